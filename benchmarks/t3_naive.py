"""Target 3: the engine against a naive tracker (one ORM UPDATE and COMMIT per recipient)."""

from __future__ import annotations

from .cli import Target, main_for
from .context import BenchContext
from .report import Figure, rate, seconds
from .side_by_side import side_by_side

TARGET = 30.0
TITLE = "engine vs naive tracking (one ORM UPDATE + COMMIT per recipient)"


def run(ctx: BenchContext) -> Figure:
    measured = side_by_side(ctx)
    best = measured.best_engine
    naive_n = measured.sizes.naive
    naive_rate = naive_n / measured.naive_seconds
    ratio = best.rate / naive_rate
    extrapolated = best.recipients / naive_rate
    return Figure(
        number=3,
        title=TITLE,
        figure=f"{ratio:.1f}x faster per recipient",
        target=f">= {TARGET:.0f}x",
        passed=ratio >= TARGET,
        judged=ctx.options.judged,
        details=[
            f"naive run on {naive_n:,} recipients: {seconds(measured.naive_seconds)} = "
            f"{rate(naive_rate)} recipients/s; extrapolated per recipient to "
            f"{best.recipients:,}: ~{seconds(extrapolated)} vs the engine's "
            f"{seconds(best.seconds)} ({rate(best.rate)}/s)",
            "naive = the same bulk snapshot and the same posts, then per recipient "
            "session.execute(update(Recipient)...) + session.commit() (synchronous_commit "
            "as configured on the server)",
        ],
    )


TARGET_SPEC = Target(3, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
