"""Syntax-only address validation before anything reaches the provider (no DNS)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def address_problem(email: str) -> str | None:
    """None if ``email`` is a syntactically valid address, else a short reason."""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"invalid address: {exc}"
    return None
