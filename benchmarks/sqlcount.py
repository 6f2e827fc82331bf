"""Count the SQL statements a process sends, by kind, with SQLAlchemy's cursor events."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

_VERB = re.compile(r"^\s*(\w+)")
_TABLE = re.compile(r"\b(?:UPDATE|INTO|FROM)\s+\"?(\w+)", re.IGNORECASE)


def statement_kind(statement: str) -> str:
    """``"UPDATE campaign_retry_batch"``: the verb and the first table named."""
    verb = _VERB.match(statement)
    table = _TABLE.search(statement)
    name = verb.group(1).upper() if verb else "?"
    return f"{name} {table.group(1)}" if table else name


class StatementCounter:
    """Counts ``before_cursor_execute`` events of one engine while active.

    An ``executemany`` (or one page of SQLAlchemy's insertmanyvalues) counts as one statement:
    it is one round trip.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.kinds: Counter[str] = Counter()

    def _on_execute(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        self.kinds[statement_kind(statement)] += 1

    def attach(self) -> None:
        sa.event.listen(self.engine, "before_cursor_execute", self._on_execute)

    def detach(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._on_execute)

    @contextmanager
    def counting(self) -> Iterator[StatementCounter]:
        self.attach()
        try:
            yield self
        finally:
            self.detach()

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


def format_kinds(kinds: Counter[str], per: float, unit: str) -> str:
    """``"UPDATE campaign_retry_batch 2.00, ..."``: each kind divided by ``per``."""
    return ", ".join(f"{kind} {n / per:.2f}" for kind, n in kinds.most_common()) + f" {unit}"
