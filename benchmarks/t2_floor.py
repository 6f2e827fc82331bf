"""Target 2: the engine's end-to-end time against the floor measured in the same run."""

from __future__ import annotations

from .cli import Target, main_for
from .context import BenchContext
from .report import Figure, rate, seconds
from .side_by_side import side_by_side

TARGET = 2.0
TITLE = "engine time vs floor (bulk-insert the snapshot + post the same batches, no tracking)"


def run(ctx: BenchContext) -> Figure:
    measured = side_by_side(ctx)
    best = measured.best_engine
    floor = measured.best_floor
    n = measured.sizes.engine
    ratio = best.seconds / floor
    runs = ", ".join(seconds(s) for s in measured.floor_seconds)
    return Figure(
        number=2,
        title=TITLE,
        figure=f"{ratio:.2f}x the floor",
        target=f"<= {TARGET:.0f}x",
        passed=ratio <= TARGET,
        judged=ctx.options.judged,
        details=[
            f"{n:,} recipients: engine best {seconds(best.seconds)} ({rate(best.rate)}/s), "
            f"floor best {seconds(floor)} ({rate(n / floor)}/s); floor runs {runs}",
            "floor = the host's loader read + one INSERT ... RETURNING id per 1,000 rows "
            "(insertmanyvalues) + the same Mailgun provider posting the same batches to the "
            "same fake, one commit, nothing tracked; run alternately with the engine",
            f"engine overhead over the floor: {seconds(best.seconds - floor)} "
            f"({(best.seconds - floor) / n * 1e6:.0f} us per recipient)",
        ],
    )


TARGET_SPEC = Target(2, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
