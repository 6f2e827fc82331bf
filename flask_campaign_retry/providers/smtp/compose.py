"""The MIME message the SMTP provider sends: ``%recipient.x%`` placeholders filled as Mailgun
fills its recipient variables, headers built by :mod:`email` so CR, LF and NUL never reach a
header, whatever a recipient's variables hold."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr
from typing import Any

from flask_campaign_retry.providers.base import BatchRef, OutgoingMessage

PLACEHOLDER = re.compile(r"%recipient\.([A-Za-z0-9_.-]+)%")
_UNSAFE = re.compile(r"[\r\n\0]")
# Every character str.splitlines() breaks on, and the other C0/C1 controls: the email package
# refuses a header value that holds a line break of any of these kinds.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Headers the provider writes itself; a message_builder may not set them.
OWN_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
TAGS_HEADER = "X-Campaign-Retry-Tags"
REF_HEADER = "X-Campaign-Retry-Ref"


def is_personalised(message: OutgoingMessage) -> bool:
    """Whether any part of the message holds a ``%recipient.x%`` placeholder."""
    parts = [
        message.subject,
        message.html,
        message.text,
        message.reply_to,
        *message.headers.values(),
    ]
    return any(part and "%recipient." in part for part in parts)


def fill(text: str, variables: Mapping[str, Any]) -> str:
    """Replace ``%recipient.<key>%`` with the recipient's variable; unknown keys stay as they are
    (so a wrong placeholder shows in the mail, as with Mailgun's recipient variables)."""
    if "%recipient." not in text:
        return text

    def value(found: re.Match[str]) -> str:
        key = found.group(1)
        return str(variables[key]) if key in variables else found.group(0)

    return PLACEHOLDER.sub(value, text)


def header_value(text: str) -> str:
    """A header value with CR, LF, NUL and every other control or line-separator character
    turned into spaces (a filled-in variable may hold them; the message's own fields were
    refused at validation if they held CR, LF or NUL)."""
    return _CONTROL.sub(" ", text)


def validate(message: OutgoingMessage) -> None:
    """Refuse what this provider cannot carry safely; the error names the field."""
    fields = {"subject": message.subject, "from_address": message.from_address}
    if message.reply_to:
        fields["reply_to"] = message.reply_to
    for name, value in message.headers.items():
        if not name or not re.fullmatch(r"[!-9;-~]+", name):
            raise ValueError(f"headers: {name!r} is not a valid header name.")
        if name.lower() in OWN_HEADERS:
            raise ValueError(
                f"headers[{name!r}]: the SMTP provider sets {name} itself; use the "
                "message's subject / from_address fields instead."
            )
        fields[f"headers[{name!r}]"] = value
    for index, tag in enumerate(message.tags):
        fields[f"tags[{index}]"] = tag
    for name, value in fields.items():
        if _UNSAFE.search(value):
            raise ValueError(f"{name}: contains a line break or NUL, which a header cannot carry.")
    for name in ("from_address", "reply_to"):
        address = fields.get(name)
        if (
            address is not None
            and "@" not in parseaddr(address)[1]
            and "%recipient." not in address
        ):
            raise ValueError(f"{name}: {address!r} has no email address.")


class Composer:
    """Renders one batch's message, per recipient or once for everyone."""

    def __init__(self, message: OutgoingMessage, ref: BatchRef, shared_to: str | None) -> None:
        self.message = message
        self.shared_to = shared_to
        self.personal = shared_to is None or is_personalised(message)
        self.ref = f"{ref.campaign_id}/{ref.attempt_id}/{ref.batch_id}"
        self.domain = parseaddr(message.from_address)[1].rpartition("@")[2] or "localhost"
        self.boundary = f"=_campaign-retry-{uuid.uuid4().hex}"

    def placeholder_count(self) -> int:
        """How many ``%recipient.`` placeholders the message's fields hold."""
        m = self.message
        parts = [m.subject, m.html, m.text, m.reply_to, m.from_address, *m.headers.values()]
        return sum(part.count("%recipient.") for part in parts if part)

    def render(
        self, to: str, variables: Mapping[str, Any], message_id: str, date: str | None = None
    ) -> bytes:
        """The message for ``to`` (its To: header) with ``variables`` filled in, as bytes with
        CRLF line ends; ``message_id`` is given without angle brackets, ``date`` defaults to
        now."""
        m = self.message
        msg = EmailMessage(policy=SMTP)
        msg["From"] = header_value(fill(m.from_address, variables))
        msg["To"] = header_value(to)
        msg["Subject"] = header_value(fill(m.subject, variables))
        msg["Date"] = date or formatdate(usegmt=True)
        msg["Message-ID"] = f"<{message_id}>"
        if m.reply_to:
            msg["Reply-To"] = header_value(fill(m.reply_to, variables))
        for name, value in m.headers.items():
            if name.lower() != "reply-to" or not m.reply_to:
                msg[name] = header_value(fill(value, variables))
        if m.tags:
            msg[TAGS_HEADER] = header_value(", ".join(m.tags))
        msg[REF_HEADER] = self.ref
        text = fill(m.text, variables).replace("\0", "") if m.text else None
        html = fill(m.html, variables).replace("\0", "") if m.html else None
        if text is not None:
            msg.set_content(text)
            if html is not None:
                msg.add_alternative(html, subtype="html")
                msg.set_boundary(self.boundary)
        elif html is not None:
            msg.set_content(html, subtype="html")
        return msg.as_bytes()
