"""Shared test helpers: building audiences, draining queues, reading recipient rows."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.queue.names import PREPARE_JOB
from flask_campaign_retry.queue.worker import run_burst
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import RecipientStatus
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from tests import hostapp


def emails(n: int, prefix: str = "user", domain: str = "example.com") -> list[str]:
    return [f"{prefix}{i:06d}@{domain}" for i in range(n)]


def campaign_with(addresses: list[str], list_name: str = "main") -> Any:
    hostapp.add_subscribers(list_name, addresses)
    return hostapp.new_campaign(list_name)


def drain(app: Flask, *, until: Callable[[], bool] | None = None, timeout: float = 30.0) -> None:
    """Run queued jobs in this process; with ``until``, keep running (scheduler included) until
    the condition holds, so jobs scheduled for later are picked up too."""
    hostapp.db.session.rollback()
    run_burst(app)
    if until is None:
        return
    deadline = time.monotonic() + timeout
    while not until():
        # The check read the database: end that transaction, or on SQLite its shared lock
        # would stall the job's writes (same thread, another connection) until busy timeout.
        hostapp.db.session.rollback()
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached before the timeout\n{_queue_story(app)}")
        time.sleep(0.2)
        run_burst(app, with_scheduler=True)


def prepare_only(app: Flask, campaign: Any) -> list[int]:
    """Send, and run just the preparation job: the batch jobs stay queued. Returns the
    campaign's batch ids in order."""
    hostapp.retry.send(campaign)
    queue = get_state().queue(app).queue
    [prepare] = [job for job in queue.get_jobs() if job.func_name == PREPARE_JOB]
    queue.remove(prepare)
    prepare.perform()
    return [b.id for b in batches(campaign)]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` every 10 ms until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _queue_story(app: Flask) -> str:
    """What the queue holds, and why failed jobs failed: the message of a drain that timed out."""
    queue = get_state(app).queue(app).queue
    due = queue.connection.zrange(queue.scheduled_job_registry.key, 0, -1, withscores=True)
    lines = [
        f"queued={queue.count} started={queue.started_job_registry.get_job_ids()} "
        f"now={time.time():.1f} scheduled (id, due)={[(j.decode(), at) for j, at in due]}"
    ]
    for job_id in queue.failed_job_registry.get_job_ids():
        job = queue.fetch_job(job_id)
        if job is not None:
            lines.append(f"failed {job.func_name}{job.args}: {job.exc_info}")
    return "\n".join(lines)


def reload(campaign: Any) -> Any:
    hostapp.db.session.expire_all()
    return hostapp.db.session.get(type(campaign), campaign.id)


def recipient_rows(campaign: Any) -> dict[str, Any]:
    """email -> recipient row of ``campaign``."""
    model = get_state().models.recipient
    hostapp.db.session.expire_all()
    rows = hostapp.db.session.execute(
        sa.select(model).where(model.campaign_id == campaign.id)
    ).scalars()
    return {row.email: row for row in rows}


def status_counts(campaign: Any) -> Counter[str]:
    return Counter(row.status.value for row in recipient_rows(campaign).values())


def attempts(campaign: Any) -> list[Any]:
    model = get_state().models.attempt
    hostapp.db.session.expire_all()
    return list(
        hostapp.db.session.execute(
            sa.select(model).where(model.campaign_id == campaign.id).order_by(model.number)
        ).scalars()
    )


def batches(campaign: Any) -> list[Any]:
    model = get_state().models.batch
    hostapp.db.session.expire_all()
    return list(
        hostapp.db.session.execute(
            sa.select(model).where(model.campaign_id == campaign.id).order_by(model.id)
        ).scalars()
    )


ROOT = Path(__file__).resolve().parents[1]
#: Config keys a worker subprocess needs to be the same app as the test's.
WORKER_CONFIG_KEYS = (
    "SQLALCHEMY_DATABASE_URI",
    "CAMPAIGN_RETRY_REDIS_URL",
    "CAMPAIGN_RETRY_QUEUE",
    "CAMPAIGN_RETRY_PROVIDER",
    "MAILGUN_API_KEY",
    "MAILGUN_DOMAIN",
    "MAILGUN_API_URL",
    "CAMPAIGN_RETRY_BATCH_SIZE",
    "CAMPAIGN_RETRY_READ_TIMEOUT",
    "CAMPAIGN_RETRY_LEASE_SECONDS",
    "CAMPAIGN_RETRY_BACKOFF_BASE",
    "CAMPAIGN_RETRY_BACKOFF_CAP",
    "CAMPAIGN_RETRY_AUTO_RETRY",
)


def start_worker(app: Flask, *, burst: bool = False) -> subprocess.Popen[bytes]:
    """A real forking RQ worker process for ``app``, in its own process group (so a test can
    kill it together with its work horse)."""
    env = dict(os.environ)
    env["HOSTAPP_CONFIG"] = json.dumps(
        {key: app.config[key] for key in WORKER_CONFIG_KEYS if key in app.config}
    )
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "tests.worker_proc"] + (["--burst"] if burst else [])
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid``, read from /proc (RQ's work horse calls setpgrp, so killing
    the worker's process group would leave the horse running)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if parent == pid:
                child = int(entry.name)
                found += [child, *_children(child)]
    return found


def kill_worker(worker: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL the worker and its work horse at once; return the pids killed."""
    victims = [worker.pid, *_children(worker.pid)]
    for pid in reversed(victims):  # the horse first, so its parent cannot fork another
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
            os.kill(pid, signal.SIGKILL)
    worker.wait(timeout=30)
    return victims


UNCERTAIN_CONFIG: dict[str, Any] = {
    "CAMPAIGN_RETRY_AUTO_RETRY": False,
    "CAMPAIGN_RETRY_READ_TIMEOUT": 0.3,
}


def uncertain_campaign(app: Flask, mailgun: FakeMailgun, rule: FaultRule, n: int = 4) -> Any:
    """A campaign whose one batch timed out: every recipient UNCERTAIN, campaign FAILED."""
    mailgun.add_fault(rule)
    campaign = campaign_with(emails(n, prefix="rc"), list_name="rc")
    hostapp.retry.send(campaign)
    drain(app)
    mailgun.clear_faults()
    campaign = reload(campaign)
    assert {r.status for r in recipient_rows(campaign).values()} == {RecipientStatus.UNCERTAIN}
    return campaign
