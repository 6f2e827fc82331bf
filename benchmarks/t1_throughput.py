"""Target 1: initial send of 100,000 recipients on PostgreSQL with 1 worker, recipients/s."""

from __future__ import annotations

from .cli import Target, main_for
from .context import BenchContext
from .report import Figure, rate, seconds
from .side_by_side import forked, side_by_side

TARGET = 20_000
STRETCH = 50_000
TITLE = "initial send, PostgreSQL, 1 worker, fake Mailgun answering at once"


def run(ctx: BenchContext) -> Figure:
    measured = side_by_side(ctx)
    best = measured.best_engine
    fork = forked(ctx)
    runs = ", ".join(seconds(r.seconds) for r in measured.engine_runs)
    batch_seconds = best.seconds - best.prepare_seconds
    return Figure(
        number=1,
        title=TITLE,
        figure=f"{rate(best.rate)} recipients/s",
        target=f">= {rate(TARGET)} recipients/s (stretch {rate(STRETCH)})",
        passed=best.rate >= TARGET,
        judged=ctx.options.judged,
        details=[
            f"{best.recipients:,} recipients in {best.batches} batches of "
            f"{best.recipients // best.batches:,}; in-process RQ SimpleWorker (run_burst); "
            f"runs {runs}, best {seconds(best.seconds)}",
            f"best run split: preparation job (snapshot) {seconds(best.prepare_seconds)} "
            f"({best.prepare_seconds / best.seconds:.0%}), batch jobs {seconds(batch_seconds)} "
            f"({batch_seconds / best.seconds:.0%}, {batch_seconds / best.batches * 1000:.0f} ms "
            "per batch)",
            f"stretch {rate(STRETCH)}/s: {'reached' if best.rate >= STRETCH else 'not reached'}",
            f"one forking RQ worker process (what `flask campaign-retry worker` runs): "
            f"{rate(fork.rate)} recipients/s in {seconds(fork.seconds)} = "
            f"{fork.rate / best.rate:.2f}x the in-process worker",
        ],
    )


TARGET_SPEC = Target(1, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
