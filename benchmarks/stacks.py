"""Summaries of sampled stacks (pyinstrument trees, py-spy raw output): where the time went."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

Stack = tuple[str, ...]
_PYSPY_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_SITE = re.compile(r".*/(?:site-packages|lib/python3\.\d+)/")


def short_file(path: str) -> str:
    """``sqlalchemy/engine/base.py`` instead of the full path of an installed module."""
    return _SITE.sub("", path).replace("/work/main/", "")


def frame_name(function: str, path: str) -> str:
    return f"{function} ({short_file(path)})"


def pyinstrument_stacks(root: Any) -> Iterator[tuple[Stack, float]]:
    """(stack, self seconds) for every frame of a pyinstrument frame tree."""
    pending: list[tuple[Any, Stack]] = [(root, ())]
    while pending:
        frame, parents = pending.pop()
        if frame.is_synthetic:  # "[self]", "[await]": time of the parent frame itself
            yield parents, frame.time
            continue
        stack = (*parents, frame_name(frame.function, frame.file_path or "?"))
        children = list(frame.children)
        own = frame.time - sum(child.time for child in children)
        if own > 0:
            yield stack, own
        pending.extend((child, stack) for child in children)


def pyspy_stacks(lines: Iterable[str], rate: float) -> Iterator[tuple[Stack, float]]:
    """(stack, seconds) from ``py-spy record --format raw`` (collapsed stacks) at ``rate`` Hz."""
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        stack = []
        for raw in frames.split(";"):
            found = _PYSPY_FRAME.match(raw)
            stack.append(frame_name(found["func"], found["file"]) if found else raw)
        yield tuple(stack), float(count) / rate


Totals = dict[str, float]


def self_time(stacks: Iterable[tuple[Stack, float]]) -> Totals:
    totals: Totals = defaultdict(float)
    for stack, weight in stacks:
        totals[stack[-1]] += weight
    return totals


def inclusive_time(stacks: Iterable[tuple[Stack, float]], marker: str) -> Totals:
    """Time spent inside each frame whose name contains ``marker`` (each counted once per
    stack, so recursion does not double it)."""
    totals: Totals = defaultdict(float)
    for stack, weight in stacks:
        for name in set(stack):
            if marker in name:
                totals[name] += weight
    return totals


def table(counts: Totals, total: float, top: int, title: str) -> list[str]:
    lines = [title]
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    for name, weight in ranked[:top]:
        lines.append(f"  {weight / total:6.1%} {weight:7.2f} s  {name}")
    return lines
