"""A fast path for personalised messages: the batch's message is rendered once by
:class:`~.compose.Composer` with its placeholders left in, and each recipient's copy is that
template with the placeholders, To: and Message-ID replaced in the bytes.

Only where that gives the very bytes the full render would: the template must keep every
placeholder intact (no quoted-printable or base64 body, no encoded header, no placeholder in
an address header), a recipient's values and address must be short plain ASCII words without
quotes, brackets or line breaks, and no line of the result may pass 78 characters (past that
the full render would fold a header or encode the body). Any other recipient goes through the
full render.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from flask_campaign_retry.providers.smtp.compose import Composer

_TO = "campaign-retry-to@sentinel.invalid"
_ID = "campaign-retry-id@sentinel.invalid"
_PLACEHOLDER = re.compile(rb"%recipient\.([A-Za-z0-9_.-]+)%")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._'+-]+(?: [A-Za-z0-9._'+-]+)*")
MAX_LINE = 78
_SAFE_ADDRESS = re.compile(r"[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9.-]{1,190}")


class _Unsafe(Exception):
    """A value the template cannot take: render this recipient in full."""


class TemplateRenderer:
    """Per-recipient bytes from one template; :meth:`render` returns None where it cannot."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer
        self.date = formatdate(usegmt=True)
        raw = composer.render(_TO, {}, _ID, self.date)
        m = composer.message
        intact = (
            "%recipient." not in m.from_address + (m.reply_to or "")
            and raw.count(b"%recipient.") == composer.placeholder_count()
            and raw.count(_TO.encode()) == 1
            and raw.count(_ID.encode()) == 1
        )
        self.template = raw if intact else None

    def render(self, to: str, variables: Mapping[str, Any], message_id: str) -> bytes:
        """The same bytes as ``composer.render(to, variables, message_id, date)``."""
        if self.template is not None and _SAFE_ADDRESS.fullmatch(to):

            def value(found: re.Match[bytes]) -> bytes:
                key = found.group(1).decode()
                if key not in variables:
                    return found.group(0)
                text = str(variables[key])
                if len(text) > MAX_LINE or not _SAFE_VALUE.fullmatch(text):
                    raise _Unsafe
                return text.encode()

            try:
                filled = _PLACEHOLDER.sub(value, self.template)
            except _Unsafe:
                pass
            else:
                filled = filled.replace(_TO.encode(), to.encode())
                filled = filled.replace(_ID.encode(), message_id.encode())
                if max(map(len, filled.split(b"\r\n"))) <= MAX_LINE:
                    return filled
        return self.composer.render(to, variables, message_id, self.date)
