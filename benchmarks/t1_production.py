"""Target 1: the production (forking) worker's send rate against the in-process worker's, and
its absolute rate, on the same 100,000-recipient campaign in the same run."""

from __future__ import annotations

from .cli import Target, main_for
from .context import BenchContext
from .report import Figure, rate, seconds
from .side_by_side import forked, side_by_side

RATIO = 0.9
TARGET = 10_000
STRETCH = 20_000
TITLE = "initial send, production (forking) worker vs in-process worker, PostgreSQL"


def run(ctx: BenchContext) -> Figure:
    measured = side_by_side(ctx)
    best = measured.best_engine
    fork = forked(ctx)
    ratio = fork.rate / best.rate
    runs = ", ".join(seconds(r.seconds) for r in measured.engine_runs)
    batch_seconds = best.seconds - best.prepare_seconds
    return Figure(
        number=1,
        title=TITLE,
        figure=f"{rate(fork.rate)} recipients/s = {ratio:.2f}x the in-process worker",
        target=f">= {RATIO}x and >= {rate(TARGET)} recipients/s (stretch {rate(STRETCH)})",
        passed=ratio >= RATIO and fork.rate >= TARGET,
        judged=ctx.options.judged,
        details=[
            f"one forking RQ worker process (what `flask campaign-retry worker` runs), idle "
            f"before the send: {fork.recipients:,} recipients in {seconds(fork.seconds)} "
            "(attempt started_at -> ended_at)",
            f"ratio {ratio:.2f}x: {'PASS' if ratio >= RATIO else 'MISS'}; absolute "
            f"{rate(fork.rate)}/s: {'PASS' if fork.rate >= TARGET else 'MISS'}; stretch "
            f"{rate(STRETCH)}/s: {'reached' if fork.rate >= STRETCH else 'not reached'}",
            f"in-process RQ SimpleWorker (run_burst): {rate(best.rate)} recipients/s, "
            f"{best.recipients:,} recipients in {best.batches} batches; runs {runs}, best "
            f"{seconds(best.seconds)}",
            f"in-process best run split: preparation job (snapshot) "
            f"{seconds(best.prepare_seconds)} ({best.prepare_seconds / best.seconds:.0%}), batch "
            f"jobs {seconds(batch_seconds)} ({batch_seconds / best.seconds:.0%}, "
            f"{batch_seconds / best.batches * 1000:.0f} ms per batch)",
        ],
    )


TARGET_SPEC = Target(1, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
