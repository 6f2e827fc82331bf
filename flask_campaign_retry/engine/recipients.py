"""Turn whatever the host's ``recipients_loader`` yields into (email, variables) pairs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from flask_campaign_retry.errors import CampaignRetryError


class RecipientListError(CampaignRetryError):
    """The recipients_loader yielded something that is not a recipient."""


def normalize_email(email: str) -> str:
    """Strip whitespace and lower-case the domain (the local part is case-sensitive by RFC)."""
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at:
        return email
    return f"{local}@{domain.lower()}"


def _pair(item: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping):
        email = item.get("email")
        variables = item.get("variables", item.get("vars")) or {}
    elif isinstance(item, tuple) and len(item) == 2:
        email, variables = item
    elif hasattr(item, "email"):
        email = item.email
        variables = getattr(item, "recipient_variables", None) or {}
    else:
        raise RecipientListError(
            f"recipients_loader yielded {type(item).__name__!r}; yield an email string, "
            "(email, variables) tuples, {'email': ..., 'variables': {...}} mappings, or objects "
            "with an `email` attribute."
        )
    if not isinstance(email, str) or not email.strip():
        raise RecipientListError(
            f"recipients_loader yielded a recipient without an email: {item!r}"
        )
    if not isinstance(variables, Mapping):
        raise RecipientListError(
            f"Recipient variables for {email!r} must be a mapping, got {type(variables).__name__}."
        )
    return email, dict(variables)


def iter_recipients(items: Iterable[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield normalised (email, variables) pairs, lazily, so a million rows never sit in memory."""
    for item in items:
        email, variables = _pair(item)
        yield normalize_email(email), variables


#: Longest address a recipient row stores (the ``email`` column's length).
MAX_STORED_ADDRESS = 320


def dedupe_key(email: str, casefold: bool) -> str:
    """The key duplicates are recognised by: ``Bob@Example.COM`` and ``bob@example.com`` are one
    mailbox in practice, so by default the key is the case-folded address (the address itself
    is sent as given). A key that case folding lengthens past the column keeps the address."""
    if not casefold:
        return email
    folded = email.casefold()
    return folded if len(folded) <= MAX_STORED_ADDRESS else email


def storable_address(email: str) -> str:
    """A form of an address every database can store: what an invalid address's row shows.

    Characters no database column takes (NUL, lone surrogates) and other control characters
    become ``\\uXXXX`` escapes, and an over-long address is cut, marked with an ellipsis.
    """
    safe = "".join(
        f"\\u{ord(char):04x}" if ord(char) < 32 or 0xD800 <= ord(char) <= 0xDFFF else char
        for char in email
    )
    if len(safe) > MAX_STORED_ADDRESS:
        safe = safe[: MAX_STORED_ADDRESS - 1] + "\u2026"
    return safe
