"""Target 4: the engine's end-to-end time against two floors measured in the same run: the bulk
snapshot plus the same posts with nothing tracked, and the provider calls alone (no database)."""

from __future__ import annotations

from .cli import Target, main_for
from .context import BenchContext
from .report import Figure, rate, seconds
from .side_by_side import side_by_side

TARGET = 1.3
TITLE = "engine time vs the floor (bulk snapshot + the same posts, nothing tracked)"


def run(ctx: BenchContext) -> Figure:
    measured = side_by_side(ctx)
    best = measured.best_engine
    floor = measured.best_floor
    provider = measured.best_provider
    n = measured.sizes.engine
    ratio = best.seconds / floor
    floors = ", ".join(seconds(s) for s in measured.floor_seconds)
    providers = ", ".join(seconds(s) for s in measured.provider_seconds)
    return Figure(
        number=4,
        title=TITLE,
        figure=f"{ratio:.2f}x the floor, {best.seconds / provider:.2f}x the provider calls alone",
        target=f"<= {TARGET}x the floor (the provider-only floor is reported, not judged)",
        passed=ratio <= TARGET,
        judged=ctx.options.judged,
        details=[
            f"{n:,} recipients, in-process worker: engine best {seconds(best.seconds)} "
            f"({rate(best.rate)}/s)",
            f"floor best {seconds(floor)} ({rate(n / floor)}/s; runs {floors}) = the host's "
            "loader read + INSERT ... RETURNING id per 1,000 rows + the same Mailgun provider "
            "posting the same batches to the same fake, one commit, nothing tracked",
            f"provider calls alone best {seconds(provider)} ({rate(n / provider)}/s; runs "
            f"{providers}) = the same batches built in memory before the clock starts, posted "
            "by the same provider to the same fake, no database at all",
            f"engine overhead: {seconds(best.seconds - floor)} over the floor "
            f"({(best.seconds - floor) / n * 1e6:.0f} us per recipient), "
            f"{seconds(best.seconds - provider)} over the provider calls "
            f"({(best.seconds - provider) / n * 1e6:.0f} us per recipient)",
        ],
    )


TARGET_SPEC = Target(4, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
