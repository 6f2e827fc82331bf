"""Refuse, when an attempt is prepared, a message no provider may be handed.

Every provider gets the same generic checks: no CR, LF or NUL in the subject, the from and
reply-to addresses, header names and values or tags (a line break there is header injection),
header values must be strings. A provider may add its own limits with an optional
``validate(message)`` method that raises ``ValueError`` naming the field. Recipient variables
that a header-bound field refers to (``%recipient.name%`` in the subject, for instance) are
checked per recipient when a batch is sent (:func:`recipient_problem`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask_campaign_retry.errors import CampaignRetryError
from flask_campaign_retry.providers.base import BatchRecipient, OutgoingMessage

_FORBIDDEN = {"\r": "CR", "\n": "LF", "\x00": "NUL"}
_PLACEHOLDER = re.compile(r"%recipient\.([^%\s]+)%")


class MessageRefused(CampaignRetryError):
    """The message cannot be sent as built; the text names the field."""


def _forbidden_in(value: str) -> str | None:
    found = [name for char, name in _FORBIDDEN.items() if char in value]
    return "/".join(found) if found else None


def _check_text(field: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise MessageRefused(f"{field} must be a string, got {type(value).__name__}.")
    bad = _forbidden_in(value)
    if bad:
        raise MessageRefused(f"{field} contains {bad} (a line break or NUL is not allowed there).")


def _header_fields(message: OutgoingMessage) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = [
        ("subject", message.subject),
        ("from", message.from_address),
        ("reply-to", message.reply_to),
    ]
    headers = message.headers
    if not isinstance(headers, Mapping):
        raise MessageRefused(f"headers must be a mapping, got {type(headers).__name__}.")
    for name, value in headers.items():
        if not isinstance(name, str) or not name.strip():
            raise MessageRefused(f"header name {name!r} must be a non-empty string.")
        if ":" in name or _forbidden_in(name):
            raise MessageRefused(f"header name {name!r} contains ':' or a line break or NUL.")
        fields.append((f"header {name!r}", value))
    return fields


def validate_message(message: OutgoingMessage, provider: Any) -> None:
    """Raise :class:`MessageRefused` if ``message`` must not be handed to ``provider``."""
    for field, value in _header_fields(message):
        _check_text(field, value)
    for index, tag in enumerate(message.tags):
        _check_text(f"tag {index + 1}", tag)
    check = getattr(provider, "validate", None)
    if callable(check):
        try:
            check(message)
        except (ValueError, TypeError) as exc:
            name = getattr(provider, "name", type(provider).__name__)
            raise MessageRefused(f"the {name} provider refuses the message: {exc}") from exc


def header_variables(message: OutgoingMessage) -> frozenset[str]:
    """Names of the recipient variables the subject, from, reply-to and headers refer to."""
    names: set[str] = set()
    for _, value in _header_fields(message):
        if isinstance(value, str):
            names.update(_PLACEHOLDER.findall(value))
    return frozenset(names)


def recipient_problem(recipient: BatchRecipient, names: frozenset[str]) -> str | None:
    """Why this recipient's variables cannot go into the headers, or None."""
    for name in sorted(names):
        value = recipient.variables.get(name)
        if isinstance(value, str) and _forbidden_in(value):
            return (
                f"invalid recipient variable {name!r}: it goes into a header and contains "
                "a line break or NUL"
            )
    return None
