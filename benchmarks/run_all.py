"""Run every benchmark target in one session: ``python -m benchmarks.run_all [--quick]``.

``--quick``: small sizes, a smoke run of every code path (< ~60 s) that judges no speed but
fails (exit 1) on a crash. ``--skip-million``: the 1,000,000-recipient runs (targets 6 and 7's
memory half) at 100,000. Targets 1-7 are issue 15's, numbered as there; 8 (SMTP) is an extra.
``--strict``: exit 2 when a judged target is missed. See benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import (
    t1_production,
    t2_scaling,
    t3_statements,
    t4_floor,
    t5_snapshot,
    t6_retry,
    t7_naive_memory,
    t8_smtp,
)
from .cli import parse_options, run_targets

TARGETS = [
    t1_production.TARGET_SPEC,
    t2_scaling.TARGET_SPEC,
    t3_statements.TARGET_SPEC,
    t4_floor.TARGET_SPEC,
    t5_snapshot.TARGET_SPEC,
    t6_retry.TARGET_SPEC,
    t7_naive_memory.TARGET_SPEC,
    t8_smtp.TARGET_SPEC,
]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(argv, "Run every flask-campaign-retry benchmark target.")
    return run_targets(TARGETS, args)


if __name__ == "__main__":
    sys.exit(main())
