"""Find a host campaign from an id that came from outside: a URL segment or a CLI argument.

The id is checked against the type of the host's primary key *before* it reaches the
database, so that ``/campaigns/abc/retry``, ``/campaigns/99999999999999999999999/retry`` or an
id with a NUL byte is simply "no such campaign" instead of a driver error (SQLite overflows
above 2**63 - 1; PostgreSQL refuses NUL in text, and a 32-bit ``db.Integer`` key refuses
2**31 with "integer out of range").
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.state import AppState

#: Decimal ASCII digits only: ``int()`` would also accept "٣", " 3", "3_000" and "+3".
_DIGITS = re.compile(r"[0-9]{1,19}")
MAX_INTEGER_ID = 2**63 - 1
MAX_TEXT_ID_LENGTH = 255
#: Largest value of each integer column type on databases with fixed-width integers
#: (PostgreSQL, MySQL). SQLite stores every INTEGER in up to 8 bytes.
_INTEGER_LIMITS: tuple[tuple[type, int], ...] = (
    (sa.SmallInteger, 2**15 - 1),
    (sa.BigInteger, 2**63 - 1),
    (sa.Integer, 2**31 - 1),
)


def _key_column(state: AppState) -> Any:
    (column,) = state.models.campaign.__table__.primary_key.columns
    return column


def _key_type(state: AppState) -> type:
    column = _key_column(state)
    try:
        python_type: type = column.type.python_type
    except NotImplementedError:  # SQLAlchemy 2.0: a type that declares no Python type
        python_type = str
    if python_type is object:  # SQLAlchemy 2.1 answers ``object`` for such a type
        python_type = str
    return python_type


def max_integer_id(state: AppState) -> int:
    """The largest id the host's integer key column can hold on its database."""
    bind = state.db.session.get_bind(mapper=sa.inspect(state.models.campaign))
    dialect = bind.dialect
    if dialect.name == "sqlite":
        return MAX_INTEGER_ID
    column_type = _key_column(state).type.dialect_impl(dialect)
    column_type = getattr(column_type, "impl_instance", column_type)
    for kind, limit in _INTEGER_LIMITS:
        if isinstance(column_type, kind):
            return limit
    return MAX_INTEGER_ID


def id_problem(state: AppState, raw: str) -> str | None:
    """Why ``raw`` can never name a campaign of this app (for the CLI), or None."""
    if parse_campaign_id(state, raw) is not None:
        return None
    key_type = _key_type(state)
    if issubclass(key_type, int) and not issubclass(key_type, bool):
        return f"campaign ids are whole numbers from 1 to {max_integer_id(state)}"
    if issubclass(key_type, uuid.UUID):
        return "campaign ids are UUIDs"
    return f"campaign ids are 1 to {MAX_TEXT_ID_LENGTH} printable characters"


def parse_campaign_id(state: AppState, raw: str) -> Any | None:
    """The primary-key value ``raw`` stands for, or None when it cannot name a campaign
    (including an integer the key column cannot hold: every route answers 404 for it)."""
    key_type = _key_type(state)
    if issubclass(key_type, int) and not issubclass(key_type, bool):
        if not _DIGITS.fullmatch(raw):
            return None
        value = int(raw)
        return value if 0 < value <= max_integer_id(state) else None
    if issubclass(key_type, uuid.UUID):
        try:
            return uuid.UUID(raw)
        except ValueError:
            return None
    if issubclass(key_type, str):
        if not raw or len(raw) > MAX_TEXT_ID_LENGTH or not raw.isprintable():
            return None
        return raw
    return None


def load_campaign(state: AppState, raw: str) -> Any | None:
    """The host's campaign named by ``raw``, or None if there is none."""
    key = parse_campaign_id(state, raw)
    if key is None:
        return None
    return state.db.session.get(state.models.campaign, key, populate_existing=True)
