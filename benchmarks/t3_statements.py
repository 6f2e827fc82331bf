"""Target 3: SQL statements per 1,000 recipients after the snapshot, counted in the production
(forking) worker's work horses, the finalizer included; the in-process worker's count beside it."""

from __future__ import annotations

from collections import Counter

from .cli import Target, main_for
from .context import BenchContext
from .report import Figure
from .side_by_side import forked, side_by_side
from .sqlcount import format_kinds

TARGET = 3.0
TITLE = "SQL statements per 1,000 recipients after the snapshot, production worker"


def run(ctx: BenchContext) -> Figure:
    measured = side_by_side(ctx)
    worst = max(measured.engine_runs, key=lambda run: sum(run.statements.values()))
    thousands = worst.recipients / 1000
    in_process = sum(worst.statements.values()) / thousands
    fork = forked(ctx)
    horse: Counter[str] = Counter()
    jobs = 0
    snapshot: Counter[str] = Counter()
    for job, kinds in fork.statements.items():
        kinds = Counter(kinds)
        if job == "prepare_attempt":
            kinds.pop("jobs", None)
            snapshot += kinds
            continue
        jobs += kinds.pop("jobs", 0)
        horse += kinds
    per_thousand = sum(horse.values()) / (fork.recipients / 1000)
    return Figure(
        number=3,
        title=TITLE,
        figure=f"{per_thousand:.2f} statements per 1,000 recipients",
        target=f"<= {TARGET:.0f}",
        passed=per_thousand <= TARGET,
        judged=ctx.options.judged,
        details=[
            f"forking worker process, {fork.recipients:,} recipients, {jobs} jobs after the "
            f"snapshot (one work horse each, counted in each and flushed to Redis): "
            f"{sum(horse.values())} statements; COMMITs are not cursor executions and are not "
            "counted; one insertmanyvalues page or executemany counts as one",
            "per job: " + format_kinds(horse, max(jobs, 1), "per job"),
            f"snapshot job (not counted above): {sum(snapshot.values())} statements "
            "(COPY is sent on the driver's cursor and is not seen by the listener)",
            f"in-process worker (same engine, best-of runs): {in_process:.2f} per 1,000; "
            + format_kinds(worst.statements, worst.batches, "per batch"),
        ],
    )


TARGET_SPEC = Target(3, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
