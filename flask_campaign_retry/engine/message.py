"""Turn what the host's ``message_builder`` returns into an :class:`OutgoingMessage`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_campaign_retry.errors import CampaignRetryError
from flask_campaign_retry.providers.base import OutgoingMessage

_ALIASES = {"from": "from_address", "sender": "from_address", "reply-to": "reply_to"}
_FIELDS = {"subject", "from_address", "html", "text", "reply_to", "headers", "tags"}


class MessageBuildError(CampaignRetryError):
    """The message_builder returned something that cannot be sent."""


def message_to_dict(message: OutgoingMessage) -> dict[str, Any]:
    """The JSON form frozen on the attempt row (read back with :func:`build_message`)."""
    return {
        "subject": message.subject,
        "from_address": message.from_address,
        "html": message.html,
        "text": message.text,
        "reply_to": message.reply_to,
        "headers": dict(message.headers),
        "tags": list(message.tags),
    }


def build_message(raw: Any) -> OutgoingMessage:
    """Accept an OutgoingMessage or a mapping with subject/html/text/from/reply_to/headers/tags."""
    if isinstance(raw, OutgoingMessage):
        return raw
    if not isinstance(raw, Mapping):
        raise MessageBuildError(
            f"message_builder returned {type(raw).__name__}; return an OutgoingMessage or a dict "
            "with subject, from, html and/or text."
        )
    fields: dict[str, Any] = {_ALIASES.get(str(key), str(key)): value for key, value in raw.items()}
    unknown = set(fields) - _FIELDS
    if unknown:
        raise MessageBuildError(
            f"message_builder returned unknown fields {sorted(unknown)}; allowed: "
            f"{sorted(_FIELDS | set(_ALIASES))}."
        )
    try:
        return OutgoingMessage(**fields)
    except (TypeError, ValueError) as exc:
        raise MessageBuildError(f"message_builder returned an unusable message: {exc}") from exc
