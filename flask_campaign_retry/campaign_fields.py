"""One way to reach the mixin's fields, whatever the host named their columns.

A host whose campaign table already has a ``status`` (or any other mixin name) of its own uses
``campaign_mixin(status="send_status")``: the class records ``__campaign_retry_columns__``
(the extension's name -> the host's, only for renamed fields). Every read and write of a mixin
field in the package goes through this module:

- ``fields(campaign).status`` on an instance reads and writes the host's attribute;
  ``fields(Campaign).status`` on the mapped class is the column for SQL expressions;
- ``columns(table).status`` is ``table.c.<name>`` for Core statements;
- ``column_values(target, status=...)`` renames the keys of an UPDATE's values.

With nothing renamed (plain ``CampaignMixin``) ``fields`` and ``columns`` return the object
itself (``table.c``) and ``column_values`` its keywords: no proxy, no cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

#: Every field the mixin adds, by the extension's own name.
CAMPAIGN_FIELDS = (
    "status",
    "failure_reason",
    "failed_at",
    "retry_count",
    "max_retries",
    "successful_sends",
    "total_recipients",
    "delivered_count",
    "last_attempt_at",
    "next_auto_retry_at",
    "current_attempt_id",
    "scheduled_at",
    "retry_incarnation",
    "cloned_from_id",
)
#: The class attribute where a renamed mixin records its names.
NAMES_ATTRIBUTE = "__campaign_retry_columns__"
#: Where a renamed column records the extension's name for it (``Column.info``), so a bare
#: ``Table`` knows its names too.
COLUMN_INFO_KEY = "campaign_retry_field"
_TABLE_INFO_KEY = "campaign_retry_columns"


def renamed(target: Any) -> Mapping[str, str]:
    """The extension's name -> the host's, for the renamed fields of a model class or instance
    (empty when nothing is renamed)."""
    names: Mapping[str, str] | None = getattr(target, NAMES_ATTRIBUTE, None)
    return names or {}


def column_name(target: Any, field: str) -> str:
    """The host's name of the mixin field ``field`` on a model class or instance."""
    return renamed(target).get(field, field)


def mixin_column_names(target: Any) -> frozenset[str]:
    """The host's names of every mixin field on a model class or instance."""
    names = renamed(target)
    return frozenset(names.get(field, field) for field in CAMPAIGN_FIELDS)


class _Renamed:
    """Attribute access on ``target`` with the extension's names mapped to the host's."""

    __slots__ = ("_names", "_target")

    def __init__(self, target: Any, names: Mapping[str, str]) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_names", names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, self._names.get(name, name))

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, self._names.get(name, name), value)

    def __repr__(self) -> str:
        return f"fields({self._target!r})"


def fields(target: Any) -> Any:
    """``target`` (a campaign or the campaign model) with the mixin's fields under the
    extension's names: ``target`` itself when nothing is renamed."""
    names = getattr(target, NAMES_ATTRIBUTE, None)
    return _Renamed(target, names) if names else target


def table_names(table: Any) -> Mapping[str, str]:
    """The extension's name -> the column key, for the renamed mixin columns of ``table``."""
    info = table.info
    names: Mapping[str, str] | None = info.get(_TABLE_INFO_KEY)
    if names is None:
        names = {
            column.info[COLUMN_INFO_KEY]: column.key
            for column in table.columns
            if column.info.get(COLUMN_INFO_KEY, column.key) != column.key
        }
        info[_TABLE_INFO_KEY] = names
    return names


def columns(table: Any) -> Any:
    """``table.c`` with the mixin's columns under the extension's names."""
    names = table_names(table)
    return _Renamed(table.c, names) if names else table.c


def column_values(target: Any, **values: Any) -> dict[str, Any]:
    """``values`` (an UPDATE's ``.values``) keyed by the host's column names; ``target`` is the
    campaign table or model."""
    names = table_names(target) if isinstance(target, sa.Table) else renamed(target)
    if not names:
        return values
    return {names.get(key, key): value for key, value in values.items()}
