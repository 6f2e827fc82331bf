"""Find a host campaign from an id that came from outside: a URL segment or a CLI argument.

The id is checked against the type of the host's primary key *before* it reaches the
database, so that ``/campaigns/abc/retry``, ``/campaigns/99999999999999999999999/retry`` or an
id with a NUL byte is simply "no such campaign" instead of a driver error (SQLite overflows
above 2**63 - 1; PostgreSQL refuses NUL in text).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask_campaign_retry.state import AppState

#: Decimal ASCII digits only: ``int()`` would also accept "٣", " 3", "3_000" and "+3".
_DIGITS = re.compile(r"[0-9]{1,19}")
MAX_INTEGER_ID = 2**63 - 1
MAX_TEXT_ID_LENGTH = 255


def _key_type(state: AppState) -> type:
    (column,) = state.models.campaign.__table__.primary_key.columns
    try:
        python_type: type = column.type.python_type
    except NotImplementedError:
        python_type = str
    return python_type


def parse_campaign_id(state: AppState, raw: str) -> Any | None:
    """The primary-key value ``raw`` stands for, or None when it cannot name a campaign."""
    key_type = _key_type(state)
    if issubclass(key_type, int) and not issubclass(key_type, bool):
        if not _DIGITS.fullmatch(raw):
            return None
        value = int(raw)
        return value if 0 < value <= MAX_INTEGER_ID else None
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
