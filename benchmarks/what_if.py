"""What the engine changes suggested in RESULTS.md would buy: ``python -m benchmarks.what_if``.

A simulation, not engine code: each suggestion is patched in at run time, in this process (or
in the worker processes), and measured side by side with the engine as it is and the floor.

- ``returning``: the snapshot's ``INSERT ... ON CONFLICT DO NOTHING`` gets ``RETURNING id``,
  which lets SQLAlchemy send one multi-row INSERT per chunk (insertmanyvalues) instead of one
  ``cursor.executemany`` round trip per row.
- ``fast_address``: addresses that a strict ASCII pattern accepts skip ``email_validator``
  (anything else still goes through it).
- ``preload`` (forking workers): the worker process imports the job modules, builds the
  provider's SDK client and initialises the database dialect once, before it forks its horses.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from flask import Flask
from sqlalchemy.dialects import postgresql

import flask_campaign_retry.batch_job as batch_job
import flask_campaign_retry.snapshot as snapshot
from flask_campaign_retry.addresses import address_problem

from . import hostapp
from .context import BenchContext, Options, bench_context, reset_tracking
from .env import machine_lines
from .report import rate, seconds
from .send_runs import run_engine, run_floor, wait_attempt_end
from .worker_proc import PRELOAD_ENV, WorkerPool

_LOCAL = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN = re.compile(rf"(?P<local>{_LOCAL})@(?:{_LABEL}\.)+(?P<tld>[a-z]{{2,63}})")
_SPECIAL_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def fast_address_problem(email: str) -> str | None:
    found = _PLAIN.fullmatch(email)
    if (
        found is not None
        and len(email) <= 254
        and len(found["local"]) <= 64
        and found["tld"] not in _SPECIAL_TLDS
    ):
        return None
    return address_problem(email)


def _insert_returning(table: Any, dialect: str) -> Any:
    return postgresql.insert(table).on_conflict_do_nothing().returning(table.c.id)


@contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


PATCHES: dict[str, Callable[[], Any]] = {
    "returning": lambda: patched(snapshot, "insert_ignoring_duplicates", _insert_returning),
    "fast_address": lambda: patched(batch_job, "address_problem", fast_address_problem),
}
VARIANTS: list[tuple[str, tuple[str, ...]]] = [
    ("engine as it is", ()),
    ("+ snapshot RETURNING", ("returning",)),
    ("+ fast address check", ("fast_address",)),
    ("+ both", ("returning", "fast_address")),
]


def in_process(ctx: BenchContext, size: int) -> list[str]:
    app = ctx.make_app(ctx.app_config())
    with app.app_context():
        hostapp.seed_list("main", size)
        hostapp.seed_list("warm", 2_000)
    run_engine(ctx, app, "warm", 2_000)
    run_floor(ctx, app, "warm", 2_000)
    reset_tracking(app)
    floor = run_floor(ctx, app, "main", size)
    lines = [f"floor: {seconds(floor)} ({rate(size / floor)} recipients/s)"]
    for label, names in VARIANTS:
        reset_tracking(app)
        with ExitStack() as stack:
            for name in names:
                stack.enter_context(PATCHES[name]())
            run = run_engine(ctx, app, "main", size)
        lines.append(
            f"{label}: {seconds(run.seconds)} = {rate(run.rate)} recipients/s "
            f"(snapshot {seconds(run.prepare_seconds)}), {run.seconds / floor:.2f}x the floor"
        )
    return lines


def forked(ctx: BenchContext, app: Flask, list_name: str, workers: int) -> float:
    """Seconds of one send with ``workers`` forking worker processes (with what is in the env)."""
    with WorkerPool(ctx.config_of(app), workers), app.app_context():
        attempt = hostapp.retry.send(hostapp.new_campaign(list_name))
        return wait_attempt_end(app, attempt.id, timeout=900)


def forking_workers(ctx: BenchContext, size: int, latency: float, batches: int) -> list[str]:
    lines = []
    app = ctx.make_app(ctx.app_config())
    with app.app_context():
        hostapp.seed_list("forked", size)
    for preload in (False, True):
        with patched_env(PRELOAD_ENV, "1" if preload else "0"):
            elapsed = forked(ctx, app, "forked", 1)
        lines.append(
            f"1 forking worker, {size:,} recipients, preload {'on' if preload else 'off'}: "
            f"{seconds(elapsed)} = {rate(size / elapsed)} recipients/s"
        )
    batch_size = 100
    scale = ctx.make_app(ctx.app_config(batch_size=batch_size))
    with scale.app_context():
        hostapp.seed_list("scale", batch_size * batches)
    ctx.fake.reset(latency=latency)
    try:
        for preload in (False, True):
            with patched_env(PRELOAD_ENV, "1" if preload else "0"):
                one, eight = (forked(ctx, scale, "scale", n) for n in (1, 8))
            lines.append(
                f"{batches} batches of {batch_size} at {latency * 1000:.0f} ms latency, preload "
                f"{'on' if preload else 'off'}: 1 worker {seconds(one)}, 8 workers "
                f"{seconds(eight)}: {one / eight:.2f}x"
            )
    finally:
        ctx.fake.reset()
    return lines


@contextmanager
def patched_env(name: str, value: str) -> Iterator[None]:
    original = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if original is None:
            del os.environ[name]
        else:
            os.environ[name] = original


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["in-process", "forking"])
    args = parser.parse_args(argv)
    size = 5_000 if args.quick else 100_000
    for line in machine_lines():
        print(line, flush=True)
    with bench_context(Options(quick=args.quick)) as ctx:
        if args.only != "forking":
            for line in in_process(ctx, size):
                print(line, flush=True)
        if args.only == "in-process":
            return 0
        lines = forking_workers(
            ctx,
            5_000 if args.quick else 20_000,
            0.1 if args.quick else 0.5,
            16 if args.quick else 64,
        )
        for line in lines:
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
