"""Run every benchmark target in one session: ``python -m benchmarks.run_all [--quick]``.

``--quick``: small sizes, a smoke run of every code path (< ~60 s) that judges no speed but
fails (exit 1) on a crash. ``--skip-million``: targets 5 and 6 at 100,000 recipients.
``--strict``: exit 2 when a judged target is missed. See benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import (
    t1_throughput,
    t2_floor,
    t3_naive,
    t4_statements,
    t5_memory,
    t6_retry,
    t7_scaling,
    t8_smtp,
)
from .cli import parse_options, run_targets

TARGETS = [
    t1_throughput.TARGET_SPEC,
    t2_floor.TARGET_SPEC,
    t3_naive.TARGET_SPEC,
    t4_statements.TARGET_SPEC,
    t5_memory.TARGET_SPEC,
    t6_retry.TARGET_SPEC,
    t7_scaling.TARGET_SPEC,
    t8_smtp.TARGET_SPEC,
]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(argv, "Run every flask-campaign-retry benchmark target.")
    return run_targets(TARGETS, args)


if __name__ == "__main__":
    sys.exit(main())
