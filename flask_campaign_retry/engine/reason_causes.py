"""Group failure reasons by cause: provider replies often embed the refused address or a
message/queue id ("550 5.1.1 <ann@example.com>: mailbox unavailable"), which would make every
recipient its own group. Those parts are taken out before counting."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# An address, bare or in <> / quotes, with a colon right after it ("<a@b>: ..."), or a message
# id in <> (ids look like addresses).
_ADDRESS = re.compile(r"""[<"']?[^\s<>@"',;:()]+@[^\s<>@"',;:()]+[>"']?:?""")
# A long token with a digit in it: queue ids, message ids without @, hex digests.
_ID = re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{10,}\b")
_SPACES = re.compile(r"\s+")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")


def cause_of(reason: str | None) -> str | None:
    """``reason`` without addresses and ids, spaces collapsed (None stays None)."""
    if reason is None:
        return None
    text = _ADDRESS.sub(" ", reason)
    text = _ID.sub("<id>", text)
    text = _EMPTY_BRACKETS.sub(" ", text)
    text = _SPACES.sub(" ", text).strip(" :;,-")
    return text or reason


def grouped_by_cause(rows: Iterable[Any]) -> list[tuple[str | None, str | None, int]]:
    """(kind, reason, count) rows regrouped by (kind, cause), largest first then by text."""
    totals: dict[tuple[str | None, str | None], int] = {}
    for kind, reason, count in rows:
        key = (kind, cause_of(reason))
        totals[key] = totals.get(key, 0) + int(count)
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0][1] or ""))
    return [(kind, cause, n) for (kind, cause), n in ordered]
