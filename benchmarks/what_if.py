"""What the worker changes suggested in RESULTS.md would buy: ``python -m benchmarks.what_if``.

A simulation, not engine code, measured side by side with the engine as it is:

- ``preload`` (forking workers): the worker process imports the job modules, builds the
  provider's SDK client and initialises the database dialect once, before it forks its horses
  (done by ``benchmarks/worker_proc.py`` when ``BENCH_PRELOAD=1``).
- ``simple`` (not a change, an existing option): worker processes that run jobs in-process
  (RQ SimpleWorker, ``flask campaign-retry worker --simple``), no work horse per job.

The two in-process suggestions measured here earlier (the snapshot INSERT with RETURNING and the
fast address check) landed in the engine in b944ffe; RESULTS.md keeps their simulated figures.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from flask import Flask

from . import hostapp
from .context import BenchContext, Options, bench_context
from .env import machine_lines
from .report import rate, seconds
from .send_runs import wait_attempt_end
from .worker_proc import PRELOAD_ENV, SIMPLE_ENV, WorkerPool


def worker_send(ctx: BenchContext, app: Flask, list_name: str, workers: int) -> float:
    """Seconds of one send with ``workers`` worker processes (as the environment says)."""
    with WorkerPool(ctx.config_of(app), workers), app.app_context():
        attempt = hostapp.retry.send(hostapp.new_campaign(list_name))
        return wait_attempt_end(app, attempt.id, timeout=900)


def forking_workers(ctx: BenchContext, size: int, latency: float, batches: int) -> list[str]:
    lines = []
    app = ctx.make_app(ctx.app_config())
    with app.app_context():
        hostapp.seed_list("forked", size)
    for preloading in (False, True):
        with patched_env(PRELOAD_ENV, "1" if preloading else "0"):
            elapsed = worker_send(ctx, app, "forked", 1)
        lines.append(
            f"1 forking worker, {size:,} recipients, preload {'on' if preloading else 'off'}: "
            f"{seconds(elapsed)} = {rate(size / elapsed)} recipients/s"
        )
    batch_size = 100
    scale = ctx.make_app(ctx.app_config(batch_size=batch_size))
    with scale.app_context():
        hostapp.seed_list("scale", batch_size * batches)
    ctx.fake.reset(latency=latency)
    variants = [("forking, preload off", "0", "0"), ("forking, preload on", "1", "0")]
    variants.append(("simple (no horses)", "0", "1"))
    try:
        for label, preload, simple in variants:
            with patched_env(PRELOAD_ENV, preload), patched_env(SIMPLE_ENV, simple):
                one, eight = (worker_send(ctx, scale, "scale", n) for n in (1, 8))
            lines.append(
                f"{batches} batches of {batch_size} at {latency * 1000:.0f} ms latency, {label}: "
                f"1 worker {seconds(one)}, 8 workers {seconds(eight)}: {one / eight:.2f}x"
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
    args = parser.parse_args(argv)
    for line in machine_lines():
        print(line, flush=True)
    with bench_context(Options(quick=args.quick)) as ctx:
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
