"""When Mailgun says to try again: the "try again after <date>" of its 429/420 bodies and a
``Retry-After`` header, read into a UTC datetime."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

_RESUME_RE = re.compile(
    r"try again after\s+(?P<date>(?:[a-z]{3},\s*)?\d{1,2}\s+[a-z]{3}\s+\d{2,4}\s+"
    r"\d{1,2}:\d{2}(?::\d{2})?(?:\s*(?:[+-]\d{4}|[a-z]{1,5}))?)",
    re.IGNORECASE,
)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:  # RFC 2822 "-0000" means UTC with no offset information
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _parse_http_date(text: str) -> datetime | None:
    try:
        return _as_utc(parsedate_to_datetime(text.strip()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and isinstance(value, str):
            return value
    return None


def _retry_after(value: str, now: datetime) -> datetime | None:
    value = value.strip()
    if value.isascii() and value.isdigit():
        try:
            return now + timedelta(seconds=int(value))
        except OverflowError:
            return None
    return _parse_http_date(value)


def parse_resume_time(body_text: str, headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When Mailgun said to try again, as a timezone-aware UTC datetime, or ``None``.

    Reads the "try again after <RFC 2822 date>" of 429/420 bodies and a ``Retry-After``
    header (delta seconds or HTTP-date). When both are present the later one wins: each is
    the provider saying "not before", so only the later time honours both, and retrying at the
    earlier one would likely be refused again and waste an attempt. Garbage gives ``None``;
    this function never raises. A naive ``now`` is taken as UTC.
    """
    try:
        now = _as_utc(now)
        candidates: list[datetime] = []
        found = _RESUME_RE.search(body_text)  # the raw body: JSON keeps the date as is
        if found:
            parsed = _parse_http_date(found.group("date"))
            if parsed is not None:
                candidates.append(parsed)
        header = _header(headers, "Retry-After")
        if header is not None:
            parsed = _retry_after(header, now)
            if parsed is not None:
                candidates.append(parsed)
        return max(candidates) if candidates else None
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
