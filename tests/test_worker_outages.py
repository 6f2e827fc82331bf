"""``flask campaign-retry worker`` rides out a Redis outage and a PostgreSQL outage of more
than a minute each, and resumes on its own: no supervisor restarts it.

The Redis is a private redis-server on its own port (stopped with SIGKILL, restarted empty);
the database outage refuses new connections to the test database and terminates the open
ones. ``FCR_OUTAGE_SECONDS`` sets how long each outage lasts (61 by default).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from rq import Worker

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.queue.job_ids import prepare_job_id
from flask_campaign_retry.queue.names import PREPARE_JOB
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.conftest import PG_ADMIN_URL
from tests.helpers import ROOT, WORKER_CONFIG_KEYS, attempts, campaign_with, emails, kill_worker
from tests.private_redis import PrivateRedis

OUTAGE_SECONDS = float(os.environ.get("FCR_OUTAGE_SECONDS", "61"))

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def start_cli_worker(app: Flask, log_path: Path) -> subprocess.Popen[bytes]:
    """The real command, ``flask campaign-retry worker``, in its own session."""
    env = dict(os.environ)
    env["HOSTAPP_CONFIG"] = json.dumps(
        {key: app.config[key] for key in WORKER_CONFIG_KEYS if key in app.config}
    )
    env["PYTHONPATH"] = str(ROOT)
    command = [
        sys.executable, "-m", "flask", "--app", "tests.hostapp:create_app_from_env",
        "campaign-retry", "worker",
    ]  # fmt: skip
    log = log_path.open("wb")
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        hostapp.db.session.rollback()
        if condition():
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def status_of(campaign_id: int) -> EmailStatus:
    hostapp.db.session.expire_all()
    campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
    assert campaign is not None
    return campaign.status  # type: ignore[no-any-return]


def set_connections(database: str, allowed: bool) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        )
        if not allowed:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
    admin.dispose()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_worker_stops_on_sigterm_and_sigint_when_idle(
    make_app: Any, tmp_path: Path, signum: int
) -> None:
    """Riding out outages must not mean ignoring the operator: an idle worker asked to stop
    stops (RQ's warm shutdown), instead of starting a new work loop."""
    app: Flask = make_app()
    log_path = tmp_path / "worker.log"
    worker = start_cli_worker(app, log_path)
    try:
        with app.app_context():
            backend = get_state().queue(app)
            wait_until(
                lambda: any(w.get_state() == "idle" for w in Worker.all(queue=backend.queue)),
                60,
                "the worker to wait for jobs",
            )
        worker.send_signal(signum)
        assert worker.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if worker.poll() is None:
            kill_worker(worker)
    assert "RQ's work loop ended unexpectedly" not in log_path.read_text()


@pytest.mark.slow
def test_the_worker_rides_out_redis_and_postgres_outages(
    make_app: Any, private_redis: PrivateRedis, mailgun: Any, tmp_path: Path
) -> None:
    app: Flask = make_app(
        CAMPAIGN_RETRY_REDIS_URL=private_redis.url,
        CAMPAIGN_RETRY_BATCH_SIZE=5,
        CAMPAIGN_RETRY_LEASE_SECONDS=30,
    )
    # Another app on the same database whose queue nobody works: it creates an attempt whose
    # preparation the test queues by hand during the database outage.
    parked: Flask = make_app(
        CAMPAIGN_RETRY_REDIS_URL=private_redis.url, CAMPAIGN_RETRY_QUEUE="parked"
    )
    log_path = tmp_path / "worker.log"
    worker = start_cli_worker(app, log_path)
    database = app.config["SQLALCHEMY_DATABASE_URI"].rsplit("/", 1)[1]
    try:
        with app.app_context():
            first = campaign_with(emails(10, prefix="a"), list_name="a").id
            hostapp.retry.send(hostapp.db.session.get(hostapp.Campaign, first))
            wait_until(lambda: status_of(first) is EmailStatus.SENT, 60, "the first send")

            # Redis goes away for more than a minute, and comes back empty.
            private_redis.stop()
            time.sleep(OUTAGE_SECONDS)
            assert worker.poll() is None, log_path.read_text()
            private_redis.start()
            second = campaign_with(emails(10, prefix="b"), list_name="b").id
            hostapp.retry.send(hostapp.db.session.get(hostapp.Campaign, second))
            wait_until(lambda: status_of(second) is EmailStatus.SENT, 90, "a send after Redis")

            third = campaign_with(emails(10, prefix="c"), list_name="c").id
        with parked.app_context():
            hostapp.retry.send(hostapp.db.session.get(hostapp.Campaign, third))
            attempt_id = attempts(hostapp.db.session.get(hostapp.Campaign, third))[0].id
            hostapp.db.session.remove()
        with app.app_context():
            hostapp.db.session.remove()
            # PostgreSQL refuses the test database for more than a minute; the job queued
            # meanwhile meets the outage and waits it out.
            set_connections(database, allowed=False)
            backend = get_state().queue(app)
            backend.ensure(
                PREPARE_JOB,
                attempt_id,
                job_id=prepare_job_id(get_state().settings.queue_name, attempt_id),
            )
            time.sleep(OUTAGE_SECONDS)
            assert worker.poll() is None, log_path.read_text()
            set_connections(database, allowed=True)
            for engine in hostapp.db.engines.values():
                engine.dispose()
            wait_until(lambda: status_of(third) is EmailStatus.SENT, 120, "the parked send")
            fourth = campaign_with(emails(10, prefix="d"), list_name="d").id
            hostapp.retry.send(hostapp.db.session.get(hostapp.Campaign, fourth))
            wait_until(lambda: status_of(fourth) is EmailStatus.SENT, 60, "a send after PG")
    finally:
        set_connections(database, allowed=True)
        kill_worker(worker)
    everyone = emails(10, prefix="a") + emails(10, prefix="b") + emails(10, prefix="c")
    everyone += emails(10, prefix="d")
    assert mailgun.accepted_emails() == {address: 1 for address in everyone}
    log = log_path.read_text()
    assert "worker: Redis (ConnectionError) is unreachable; trying again in" in log
    assert "worker: Redis and the database answer again after" in log
    assert "the database is unreachable" in log
