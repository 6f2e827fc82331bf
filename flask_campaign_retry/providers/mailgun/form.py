"""The form of Mailgun's ``POST /v3/<domain>/messages`` for one batch, and the ``v:`` variables
that map Mailgun's events back to our campaign, attempt, batch and recipient rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from flask_campaign_retry.providers.base import BatchRecipient, BatchRef, OutgoingMessage

MAX_TAGS: Final = 3
RECIPIENT_ID_VARIABLE: Final = "campaign_retry_rid"
V_CAMPAIGN: Final = "v:campaign_retry_campaign"
V_ATTEMPT: Final = "v:campaign_retry_attempt"
V_BATCH: Final = "v:campaign_retry_batch"
V_RECIPIENT: Final = "v:campaign_retry_recipient"

FormData = dict[str, str | list[str]]


def check_message(message: OutgoingMessage) -> None:
    """Raise ``ValueError`` naming the field for what Mailgun cannot carry: more than 3 tags, a
    tag or header value that is not a string (the providers' ``validate`` step)."""
    tags = list(message.tags)
    if len(tags) > MAX_TAGS:
        raise ValueError(
            f"tags: Mailgun allows at most {MAX_TAGS} o:tag values per message, got {len(tags)}: "
            "use a fixed tag and v: variables instead of a tag per campaign."
        )
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"tags: every tag must be a string, got {type(tag).__name__}.")
    for name, value in dict(message.headers).items():
        if not isinstance(value, str):
            raise ValueError(
                f"header {name!r}: the value must be a string, got {type(value).__name__}."
            )


def build_form(
    message: OutgoingMessage, recipients: Sequence[BatchRecipient], ref: BatchRef
) -> FormData:
    """The form Mailgun's ``POST /v3/<domain>/messages`` takes for one batch.

    ``to`` repeats once per recipient; ``recipient-variables`` maps each address to its
    template variables plus ``campaign_retry_rid`` (our recipient id), which
    ``v:campaign_retry_recipient=%recipient.campaign_retry_rid%`` puts into every event.
    ``message.reply_to`` wins over a ``Reply-To`` in ``message.headers``. Raises
    ``ValueError`` for what Mailgun would refuse anyway: no recipients, a repeated address,
    more than 3 tags, a header name or value with a line break.
    """
    if not recipients:
        raise ValueError("A batch needs at least one recipient.")
    tags = list(message.tags)
    if len(tags) > MAX_TAGS:
        raise ValueError(
            f"Mailgun allows at most {MAX_TAGS} o:tag values per message, got {len(tags)}: "
            "use a fixed tag and v: variables instead of a tag per campaign."
        )
    variables: dict[str, dict[str, Any]] = {}
    for recipient in recipients:
        if recipient.email in variables:
            raise ValueError(
                f"Address {recipient.email!r} appears twice in one batch (recipient ids "
                f"{variables[recipient.email][RECIPIENT_ID_VARIABLE]} and {recipient.id}); "
                "recipient-variables are keyed by address, so each must be unique."
            )
        variables[recipient.email] = {**recipient.variables, RECIPIENT_ID_VARIABLE: recipient.id}
    form: FormData = {
        "from": message.from_address,
        "to": [recipient.email for recipient in recipients],
        "subject": message.subject,
        "recipient-variables": json.dumps(variables, separators=(",", ":"), default=str),
        V_CAMPAIGN: str(ref.campaign_id),
        V_ATTEMPT: str(ref.attempt_id),
        V_BATCH: str(ref.batch_id),
        V_RECIPIENT: f"%recipient.{RECIPIENT_ID_VARIABLE}%",
    }
    if message.html:
        form["html"] = message.html
    if message.text:
        form["text"] = message.text
    headers = dict(message.headers)
    if message.reply_to:
        headers = {k: v for k, v in headers.items() if k.lower() != "reply-to"}
        headers["Reply-To"] = message.reply_to
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n") or not name.strip():
            raise ValueError(f"Header {name!r} has an empty name or a line break.")
        form[f"h:{name}"] = value
    if tags:
        form["o:tag"] = tags
    return form
