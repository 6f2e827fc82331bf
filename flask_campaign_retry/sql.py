"""Small portable SQL helpers: insert-ignore, claims with SKIP LOCKED, chunking."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of at most ``size`` items, consuming ``items`` lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def insert_ignoring_duplicates(table: sa.Table, dialect: str) -> Any:
    """``INSERT`` that skips rows violating a unique constraint, where the database can."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect in {"mysql", "mariadb"}:
        return sa.insert(table).prefix_with("IGNORE")
    return sa.insert(table)


def claim_where(
    table: sa.Table, dialect: str, condition: sa.ColumnElement[bool]
) -> sa.ColumnElement[bool]:
    """A WHERE clause for a compare-and-set claim.

    On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP LOCKED`` so a second worker
    racing for the same row moves on at once instead of waiting; elsewhere the plain condition,
    re-checked by the UPDATE itself, is the claim (the caller checks the row count).
    """
    if dialect == "postgresql":
        locked = (
            sa.select(table.c.id).where(condition).with_for_update(skip_locked=True)
        ).scalar_subquery()
        return table.c.id == locked
    return condition
