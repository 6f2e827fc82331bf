"""One source of "now": naive UTC datetimes, portable across SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Current time as a naive UTC datetime (how every timestamp is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_naive_utc(value: datetime) -> datetime:
    """Convert an aware datetime to naive UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def isoformat_utc(value: datetime | None) -> str | None:
    """ISO 8601 with a trailing ``Z`` for JSON, or None."""
    if value is None:
        return None
    return as_naive_utc(value).isoformat(timespec="seconds") + "Z"
