"""Fault injection for the chaos test: worker processes, work horses, PostgreSQL backends and
a private Redis, hit at random moments. Each fault is recorded by kind."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from tests.conftest import PG_ADMIN_URL
from tests.helpers import ROOT, WORKER_CONFIG_KEYS, _children, kill_worker
from tests.private_redis import PrivateRedis

WORKER_APPLICATION_NAME = "fcr-chaos-worker"
FAULT_KINDS = ("kill_worker", "kill_horse", "terminate_pg_backends", "restart_redis")
#: What a worker process needs to be the same app as the test's (reconciliation and retry
#: limits included: the workers prepare the automatic retries).
CLI_WORKER_CONFIG_KEYS = (
    *WORKER_CONFIG_KEYS,
    "CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS",
    "CAMPAIGN_RETRY_MAX_RETRIES",
    "SQLALCHEMY_ENGINE_OPTIONS",
)


def start_cli_worker(app: Flask, log_path: Path) -> subprocess.Popen[bytes]:
    """``flask campaign-retry worker`` (forking, with its scheduler) in its own session."""
    env = dict(os.environ)
    config = {key: app.config[key] for key in CLI_WORKER_CONFIG_KEYS if key in app.config}
    # Named, so that the fault terminates the workers' backends and not the test's own.
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options["connect_args"] = {"application_name": WORKER_APPLICATION_NAME}
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    env["HOSTAPP_CONFIG"] = json.dumps(config)
    env["PYTHONPATH"] = str(ROOT)
    command = [
        sys.executable, "-m", "flask", "--app", "tests.hostapp:create_app_from_env",
        "campaign-retry", "worker",
    ]  # fmt: skip
    log = log_path.open("ab")
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] == "Z"
    return True


def _started_at(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


class Chaos:
    """Two forking CLI workers and the faults that hit them."""

    def __init__(self, app: Flask, redis: PrivateRedis, logs: Path, rng: random.Random) -> None:
        self.app = app
        self.redis = redis
        self.logs = logs
        self.rng = rng
        self.faults: Counter[str] = Counter()
        #: Processes (horses) that may outlive the worker they came from.
        self.orphans: list[int] = []
        self.workers = [self._start() for _ in range(2)]
        self.database = app.config["SQLALCHEMY_DATABASE_URI"].rsplit("/", 1)[1]
        self.admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def _start(self) -> subprocess.Popen[bytes]:
        return start_cli_worker(self.app, self.logs / "workers.log")

    def inject(self) -> str:
        """One fault of a random kind, now."""
        kind = self.rng.choice(FAULT_KINDS)
        getattr(self, kind)()
        self.faults[kind] += 1
        return kind

    def kill_worker(self) -> None:
        """SIGKILL a worker with its work horse and scheduler; a fresh one takes its place."""
        index = self.rng.randrange(len(self.workers))
        killed = kill_worker(self.workers[index])
        self.orphans.extend(killed)
        self.workers[index] = self._start()

    def kill_horse(self) -> None:
        """SIGKILL a worker's newest child: its work horse when it runs a job (RQ's horse has
        its own process group, so only its pid reaches it)."""
        worker = self.rng.choice(self.workers)
        children = _children(worker.pid)
        with contextlib.suppress(OSError, ValueError):
            newest = max(children, key=_started_at)
            os.kill(newest, signal.SIGKILL)

    def terminate_pg_backends(self) -> None:
        """pg_terminate_backend on every connection the workers (and their horses) hold."""
        with self.admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND application_name = :app"
                ),
                {"name": self.database, "app": WORKER_APPLICATION_NAME},
            )

    def restart_redis(self) -> None:
        """Stop the private Redis (SIGKILL), wait a little, start it again: empty."""
        self.redis.stop()
        time.sleep(self.rng.uniform(0.2, 3.0))
        self.redis.start()

    def quiesce(self, timeout: float = 60) -> None:
        """Stop the workers the way an operator does (SIGTERM: each finishes its job) and wait
        until no worker and no work horse of theirs is left, orphaned horses included. Then no
        batch can be in flight any more: every SENDING batch belongs to a dead process."""
        pids = set()
        for worker in self.workers:
            pids |= {worker.pid, *_children(worker.pid)}
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        pids |= set(self.orphans)
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            if worker.poll() is None:
                kill_worker(worker)
        while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in pids):
            if time.monotonic() > deadline:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        self.orphans.clear()

    def restart_workers(self) -> None:
        self.workers = [self._start() for _ in range(2)]

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                kill_worker(worker)
        self.admin.dispose()

    def alive(self) -> list[Any]:
        return [worker.poll() for worker in self.workers]
