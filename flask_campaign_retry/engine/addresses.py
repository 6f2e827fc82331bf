"""Syntax-only address validation before anything reaches the provider (no DNS).

email-validator (the library WTForms and pydantic use) decides. Checking it costs tens of
microseconds an address, so the common case, a plain ASCII address that a strict pattern
accepts, skips it: the pattern admits only what email-validator admits too (a property test
holds it to that), and everything else still goes through email-validator.
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

_ATOM = r"[A-Za-z0-9_+-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?:{_LABEL}\.)+(?P<tld>[a-z]{{2,63}})")
#: Special-use top-level domains that email-validator refuses (RFC 6761 and friends).
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def plainly_valid(email: str) -> bool:
    """True for a plain ASCII address that email-validator certainly accepts."""
    found = _PLAIN.fullmatch(email)
    return (
        found is not None
        and len(email) <= 254
        and len(found["local"]) <= 64
        and found["tld"] not in _SPECIAL_USE
    )


def address_problem(email: str) -> str | None:
    """None if ``email`` is a syntactically valid address, else a short reason."""
    if plainly_valid(email):
        return None
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"invalid address: {exc}"
    return None
