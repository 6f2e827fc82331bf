"""Small portable SQL helpers: insert ignoring duplicates, chunking."""

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
