"""A real forking RQ worker of the benchmarks' host app: ``python -m benchmarks.worker_proc``.

The app's config comes as JSON in ``BENCH_APP_CONFIG``. With ``BENCH_STATEMENT_KEY`` set, every
work horse counts its SQL statements and adds them to that Redis hash (``job|kind`` fields)
when its job ends, so the statements of the production worker path can be counted too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from types import TracebackType
from typing import Any, Self

from flask import Flask
from redis import Redis
from rq import Queue, Worker

from flask_campaign_retry.queue.worker import make_worker

from . import hostapp
from .procs import spawn_module, stop
from .sqlcount import StatementCounter

STATEMENT_KEY_ENV = "BENCH_STATEMENT_KEY"
#: "1": simulate a suggested engine change (benchmarks/what_if.py): load what every work horse
#: would otherwise load again before forking.
PRELOAD_ENV = "BENCH_PRELOAD"
#: "1": run jobs in the worker process itself (RQ SimpleWorker, `worker --simple`), no horses.
SIMPLE_ENV = "BENCH_SIMPLE_WORKER"


def _preload(app: Flask) -> None:
    """Import the job modules, build the provider and its SDK client (no connection is opened)
    and initialise the database dialect, in the worker process, so horses inherit them."""
    import flask_campaign_retry.jobs  # noqa: F401
    from flask_campaign_retry.state import get_state

    provider = get_state(app).provider(app)
    build_client = getattr(provider, "_sdk_client", None)
    if callable(build_client):
        build_client()
    with app.app_context():
        engine = hostapp.db.engine
        with engine.connect():
            pass
        engine.dispose()


def _count_statements(app: Flask, worker: Any, key: str) -> None:
    """Wrap the worker's perform_job (it runs in the forked horse) with a statement counter."""
    with app.app_context():
        counter = StatementCounter(hostapp.db.engine)
    counter.attach()
    perform_job = worker.perform_job

    def counted(job: Any, queue: Any, execution: Any) -> bool:
        counter.kinds.clear()
        try:
            return bool(perform_job(job, queue, execution))
        finally:
            name = str(job.func_name).rsplit(".", 1)[-1]
            pipe = worker.connection.pipeline()
            for kind, n in counter.kinds.items():
                pipe.hincrby(key, f"{name}|{kind}", n)
            pipe.hincrby(key, f"{name}|jobs", 1)
            pipe.execute()

    worker.perform_job = counted


def _stop_when_parent_goes() -> None:
    """Ask this worker to stop (warm shutdown) once our stdin, a pipe from the benchmark
    process, closes: a killed benchmark leaves no worker behind."""

    def watch() -> None:
        sys.stdin.read()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> int:
    _stop_when_parent_goes()
    app = hostapp.create_app_from_env()
    worker = make_worker(app, simple=os.environ.get(SIMPLE_ENV) == "1")
    key = os.environ.get(STATEMENT_KEY_ENV)
    if key:
        _count_statements(app, worker, key)
    if os.environ.get(PRELOAD_ENV) == "1":
        _preload(app)
    worker.work(burst=False, with_scheduler=False, logging_level="WARNING")
    return 0


class WorkerPool:
    """``count`` forking worker processes on the app's queue, started and idle on entry."""

    def __init__(
        self, config: dict[str, Any], count: int, *, statement_key: str | None = None
    ) -> None:
        self.count = count
        self.queue_name = str(config["CAMPAIGN_RETRY_QUEUE"])
        self.redis_url = str(config["CAMPAIGN_RETRY_REDIS_URL"])
        self._env = {hostapp.CONFIG_ENV: json.dumps(config)}
        if statement_key:
            self._env[STATEMENT_KEY_ENV] = statement_key
        self._procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Self:
        self._procs = [
            spawn_module(
                "benchmarks.worker_proc", env=self._env, stdin=subprocess.PIPE, stdout=None
            )
            for _ in range(self.count)
        ]
        self._wait_registered()
        return self

    def _wait_registered(self, timeout: float = 120.0) -> None:
        connection = Redis.from_url(self.redis_url)
        queue = Queue(self.queue_name, connection=connection)
        deadline = time.monotonic() + timeout
        try:
            while Worker.count(connection=connection, queue=queue) < self.count:
                if any(proc.poll() is not None for proc in self._procs):
                    raise RuntimeError("a benchmark worker process exited at start-up")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.count} workers did not register in {timeout} s")
                time.sleep(0.05)
        finally:
            connection.close()

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in self._procs:
            if proc.stdin is not None:
                proc.stdin.close()  # the worker's watcher asks it for a warm shutdown
        for proc in self._procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stop(proc)
        self._procs = []


if __name__ == "__main__":
    raise SystemExit(main())
