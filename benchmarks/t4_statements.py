"""Target 4: SQL statements per 1,000 recipients after the snapshot, counted in the worker."""

from __future__ import annotations

from collections import Counter

from .cli import Target, main_for
from .context import BenchContext
from .report import Figure
from .side_by_side import forked, side_by_side
from .sqlcount import format_kinds

TARGET = 5.0
TITLE = "SQL statements per 1,000 recipients after the snapshot (before_cursor_execute)"


def run(ctx: BenchContext) -> Figure:
    measured = side_by_side(ctx)
    worst = max(measured.engine_runs, key=lambda run: sum(run.statements.values()))
    thousands = worst.recipients / 1000
    total = sum(worst.statements.values())
    per_thousand = total / thousands
    fork = forked(ctx)
    horse: Counter[str] = Counter(fork.statements.get("send_batch", Counter()))
    jobs = horse.pop("jobs", 0)
    snapshot = fork.statements.get("prepare_attempt", Counter())
    snapshot.pop("jobs", None)
    return Figure(
        number=4,
        title=TITLE,
        figure=f"{per_thousand:.2f} statements per 1,000 recipients",
        target=f"<= {TARGET:.0f}",
        passed=per_thousand <= TARGET,
        judged=ctx.options.judged,
        details=[
            f"in-process worker, {worst.recipients:,} recipients, {worst.batches} batches: "
            f"{total} statements after the snapshot (batch jobs and the finalizer; COMMITs are "
            "not cursor executions and are not counted)",
            "per batch: " + format_kinds(worst.statements, worst.batches, "per batch"),
            f"snapshot (preparation job, not counted above): {worst.snapshot_statements} "
            f"statements = {worst.snapshot_statements / thousands:.2f} per 1,000",
            f"forking worker process ({jobs} batch jobs, one work horse each): "
            f"{sum(horse.values()) / thousands:.2f} statements per 1,000 after the snapshot; "
            + format_kinds(horse, max(jobs, 1), "per job"),
            f"forking worker snapshot job: {sum(snapshot.values())} statements",
        ],
    )


TARGET_SPEC = Target(4, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
