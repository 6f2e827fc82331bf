"""Chaos: a 5,000-recipient send on PostgreSQL with two real forking workers
(``flask campaign-retry worker``) while, at random moments, worker processes and their work
horses are SIGKILLed, the workers' PostgreSQL backends are terminated and a private Redis is
stopped and restarted empty. Once the faults stop, the documented recovery runs: the workers
are stopped and waited for (horses included), a sweep runs with time moved past the lease of
the dead processes' batches, and fresh workers finish the work.

Required of every run: nobody accepted twice by the provider, nobody lost (every recipient
accepted exactly once in the end), no campaign left SENDING, counters equal to rows.
``FCR_CHAOS_RUNS`` sets the number of runs (2 by default), ``FCR_CHAOS_SEED`` the seed;
the figures of each run are printed (``-s``) and appended to ``FCR_CHAOS_REPORT`` if set.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from redis.exceptions import RedisError

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.recovery.sweep import recover
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.chaos import Chaos
from tests.helpers import attempts, batches, campaign_with, emails, recipient_rows, reload
from tests.private_redis import PrivateRedis

RUNS = int(os.environ.get("FCR_CHAOS_RUNS", "2"))
SEED = int(os.environ.get("FCR_CHAOS_SEED", "11"))
RECIPIENTS = 5000
BATCH = 250
LEASE = 30
ACCEPTED = {RecipientStatus.SENT, RecipientStatus.DELIVERED}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


@pytest.fixture
def chaos_app(make_app: Any, private_redis: PrivateRedis) -> Flask:
    app: Flask = make_app(
        CAMPAIGN_RETRY_REDIS_URL=private_redis.url,
        CAMPAIGN_RETRY_BATCH_SIZE=BATCH,
        CAMPAIGN_RETRY_LEASE_SECONDS=LEASE,
        CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS=0,
        CAMPAIGN_RETRY_BACKOFF_BASE=0.1,
        CAMPAIGN_RETRY_BACKOFF_CAP=0.5,
        CAMPAIGN_RETRY_MAX_RETRIES=20,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
    )
    return app


def _load(campaign_id: int) -> Any:
    hostapp.db.session.remove()  # a fresh session: never a half-dead connection's transaction
    return hostapp.db.session.get(hostapp.Campaign, campaign_id)


def _settled(campaign_id: int) -> bool:
    current = _load(campaign_id)
    return current.status is not EmailStatus.SENDING and current.next_auto_retry_at is None


def _recover(chaos: Chaos, campaign_id: int, timeout: float = 180) -> int:
    """The documented recovery, once the faults stop. The workers are stopped (SIGTERM) and
    waited for, horses included, so that every batch still SENDING belongs to a dead process;
    then a sweep runs with time moved past its lease (instead of waiting 30 s), and fresh
    workers finish the requeued work and the automatic retries, swept now and then. Returns
    the sweeps run."""
    sweeps = 0
    if not _settled(campaign_id):
        chaos.quiesce()
        recover(now=utcnow() + timedelta(seconds=LEASE + 1))
        sweeps += 1
        chaos.restart_workers()
    deadline = time.monotonic() + timeout
    while not _settled(campaign_id):
        assert time.monotonic() < deadline, "campaign still SENDING after recovery"
        time.sleep(1.0)
        try:
            recover()
            sweeps += 1
        except (RedisError, sa.exc.OperationalError):
            hostapp.db.session.remove()
    return sweeps


def _one_run(chaos: Chaos, mailgun: Any, run: int, rng: random.Random) -> dict[str, Any]:
    mailgun.reset()
    mailgun.latency = 0.02
    before = Counter(chaos.faults)
    addresses = emails(RECIPIENTS, prefix=f"c{run}x")
    campaign = campaign_with(addresses, list_name=f"chaos{run}")
    campaign_id = campaign.id
    started = time.monotonic()
    hostapp.retry.send(campaign)
    for _ in range(rng.randint(2, 5)):
        time.sleep(rng.uniform(0.1, 1.5))
        if _load(campaign_id).status is not EmailStatus.SENDING:
            break
        chaos.inject()
    sweeps = _recover(chaos, campaign_id)
    campaign = _load(campaign_id)
    assert chaos.alive() == [None, None], "a worker did not ride out the faults"

    rows = recipient_rows(campaign)
    accepted = mailgun.accepted_emails()
    statuses = Counter(row.status for row in rows.values())
    campaign = reload(campaign)
    assert len(rows) == RECIPIENTS
    assert max(accepted.values()) == 1, "an address was accepted twice"
    assert set(accepted) == set(addresses), "a recipient was lost"
    assert {email for email, row in rows.items() if row.status in ACCEPTED} == set(accepted)
    assert campaign.status is EmailStatus.SENT
    assert campaign.successful_sends == sum(statuses[s] for s in ACCEPTED) == RECIPIENTS
    assert campaign.total_recipients == RECIPIENTS
    assert all(b.status in {"DONE", "UNCERTAIN", "CANCELLED"} for b in batches(campaign))
    for attempt in attempts(campaign):
        assert attempt.ended_at is not None
        assert attempt.batches_settled == attempt.batches_total
    return {
        "run": run,
        "faults": dict(chaos.faults - before),
        "seconds": round(time.monotonic() - started, 1),
        "attempts": len(attempts(campaign)),
        "provider_calls": mailgun.request_count,
        "sweeps": sweeps,
    }


def test_chaos_nobody_twice_nobody_lost_nothing_stuck(
    chaos_app: Flask, private_redis: PrivateRedis, mailgun: Any, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    with chaos_app.app_context():
        get_state().queue(chaos_app)
        chaos = Chaos(chaos_app, private_redis, tmp_path, rng)
        results = []
        try:
            for run in range(RUNS):
                result = _one_run(chaos, mailgun, run, rng)
                results.append(result)
                print(json.dumps(result))
                report = os.environ.get("FCR_CHAOS_REPORT")
                if report:
                    with open(report, "a") as out:
                        out.write(json.dumps(result) + "\n")
        finally:
            chaos.stop()
    assert sum(chaos.faults.values()) >= RUNS  # faults were injected, not skipped
