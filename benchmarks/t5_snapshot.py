"""Target 5: the snapshot on PostgreSQL against iterating the host's loader alone."""

from __future__ import annotations

from flask import Flask

from . import hostapp
from .cli import Target, main_for
from .context import BenchContext
from .report import Figure, rate, seconds
from .snapshot_runs import SnapshotRuns, measure

TARGET = 2.0
TITLE = "snapshot (preparation job) on PostgreSQL vs iterating the host's loader alone"


def _app(ctx: BenchContext, n: int) -> Flask:
    def make() -> Flask:
        app = ctx.make_app(ctx.app_config())
        with app.app_context():
            hostapp.seed_list("snap", n)
        return app

    return ctx.once("snapshot_app", make)


def runs(ctx: BenchContext) -> SnapshotRuns:
    n, reps = (5_000, 1) if ctx.options.quick else (100_000, 2)
    return ctx.once("snapshot_runs", lambda: measure(ctx, _app(ctx, n), "snap", n, reps))


def run(ctx: BenchContext) -> Figure:
    r = runs(ctx)
    loader, copy, insert = min(r.loader_seconds), min(r.copy_seconds), min(r.insert_seconds)
    ratio = copy / loader

    def listed(values: list[float]) -> str:
        return ", ".join(seconds(v) for v in values)

    return Figure(
        number=5,
        title=TITLE,
        figure=f"{ratio:.2f}x the loader alone",
        target=f"<= {TARGET:.0f}x",
        passed=ratio <= TARGET,
        judged=ctx.options.judged,
        details=[
            f"{r.recipients:,} recipients, batches of 1,000, best of {len(r.loader_seconds)}, "
            "run alternately: loader, COPY path, portable INSERT path, raw COPY bound",
            f"loader alone (keyset-paginated, items counted): {seconds(loader)} "
            f"({rate(r.recipients / loader)}/s; runs {listed(r.loader_seconds)})",
            f"preparation job with the COPY path: {seconds(copy)} "
            f"({rate(r.recipients / copy)}/s; runs {listed(r.copy_seconds)})",
            f"the same with the portable INSERT ... VALUES path (what SQLite and other "
            f"databases run): {seconds(insert)} = {insert / loader:.2f}x the loader, "
            f"{insert / copy:.2f}x the COPY path (runs {listed(r.insert_seconds)})",
            f"bound: the loader's rows COPYed straight into the recipient table (its indexes "
            f"and unique constraint as they are; no checks, no dedupe, no batches): "
            f"{seconds(min(r.raw_copy_seconds))} = {min(r.raw_copy_seconds) / loader:.2f}x the "
            f"loader (runs {listed(r.raw_copy_seconds)})",
            "the preparation job is timed in an in-process worker: message build and checks, "
            "loader, address checks, dedupe, batches, rows, one commit",
        ],
    )


TARGET_SPEC = Target(5, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
