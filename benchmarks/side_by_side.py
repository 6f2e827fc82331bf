"""The initial-send runs that targets 1-4 share, measured side by side in one session.

Order: warm-up (every path once on a small list), then for each repetition the engine, the
floor and the provider calls alone back to back on the same list, each starting from emptied
tracking tables and a checkpoint, then the naive tracker on a smaller list, then one forking
worker process (statements counted in its work horses). Best-of-repetitions is compared, as
usual on a noisy machine.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from flask import Flask
from redis import Redis

from . import hostapp
from .context import BenchContext, reset_tracking
from .send_runs import SendRun, run_engine, run_floor, run_forked, run_naive, run_provider_only


@dataclass(frozen=True)
class Sizes:
    engine: int
    naive: int
    warm: int
    reps: int


def sizes(ctx: BenchContext) -> Sizes:
    if ctx.options.quick:
        return Sizes(engine=5_000, naive=300, warm=500, reps=1)
    return Sizes(engine=100_000, naive=5_000, warm=2_000, reps=2)


@dataclass(frozen=True)
class SideBySide:
    sizes: Sizes
    engine_runs: list[SendRun]
    floor_seconds: list[float]
    #: the provider calls alone: the same posts of the same batches, no database at all
    provider_seconds: list[float]
    naive_seconds: float

    @property
    def best_engine(self) -> SendRun:
        return min(self.engine_runs, key=lambda run: run.seconds)

    @property
    def best_floor(self) -> float:
        return min(self.floor_seconds)

    @property
    def best_provider(self) -> float:
        return min(self.provider_seconds)


@dataclass(frozen=True)
class ForkedRun:
    recipients: int
    seconds: float
    #: per job function ("send_batch", "prepare_attempt"): statement kind -> count, "jobs" -> n
    statements: dict[str, Counter[str]]

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds


WARM_NAIVE = 200


def _app(ctx: BenchContext) -> Flask:
    def make() -> Flask:
        app = ctx.make_app(ctx.app_config())
        s = sizes(ctx)
        with app.app_context():
            hostapp.seed_list("main", s.engine)
            hostapp.seed_list("naive", s.naive)
            hostapp.seed_list("warm", s.warm)
            hostapp.seed_list("warmnaive", WARM_NAIVE)
        return app

    return ctx.once("send_app", make)


def side_by_side(ctx: BenchContext) -> SideBySide:
    return ctx.once("side_by_side", lambda: _measure(ctx))


def _measure(ctx: BenchContext) -> SideBySide:
    s = sizes(ctx)
    app = _app(ctx)
    run_engine(ctx, app, "warm", s.warm)
    run_floor(ctx, app, "warm", s.warm)
    run_naive(ctx, app, "warmnaive", WARM_NAIVE)
    engine_runs: list[SendRun] = []
    floor_seconds: list[float] = []
    provider_seconds: list[float] = []
    run_provider_only(ctx, app, "warm", s.warm)
    for _ in range(s.reps):
        reset_tracking(app)
        engine_runs.append(run_engine(ctx, app, "main", s.engine))
        reset_tracking(app)
        floor_seconds.append(run_floor(ctx, app, "main", s.engine))
        provider_seconds.append(run_provider_only(ctx, app, "main", s.engine))
    reset_tracking(app)
    naive = run_naive(ctx, app, "naive", s.naive)
    return SideBySide(s, engine_runs, floor_seconds, provider_seconds, naive)


def forked(ctx: BenchContext) -> ForkedRun:
    """The engine send with one real forking worker process instead of the in-process one,
    measured right after the in-process runs (same machine state)."""
    side_by_side(ctx)
    return ctx.once("forked", lambda: _measure_forked(ctx))


def _measure_forked(ctx: BenchContext) -> ForkedRun:
    app = _app(ctx)
    key = f"bench:statements:{uuid.uuid4().hex[:8]}"
    reset_tracking(app)
    n = sizes(ctx).engine
    seconds = run_forked(ctx, app, "main", n, statement_key=key)
    redis = Redis.from_url(ctx.redis_url, decode_responses=True)
    raw: dict[str, str] = redis.hgetall(key)  # type: ignore[assignment]
    redis.close()
    statements: dict[str, Counter[str]] = {}
    for field_name, value in raw.items():
        job, _, kind = field_name.partition("|")
        statements.setdefault(job, Counter())[kind] += int(value)
    return ForkedRun(n, seconds, statements)
