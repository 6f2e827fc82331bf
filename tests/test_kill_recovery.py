"""Kill test: a worker SIGKILLed at a random moment loses no recipient and sends none twice.

Each run sends a 5,000-recipient campaign with two real forking RQ worker processes on
PostgreSQL and the real Redis, SIGKILLs one of them (work horse included) once the fake Mailgun
has seen a random number of calls, lets a fresh worker finish, and runs recovery. FCR_KILL_RUNS
sets the number of runs (20 by default; the benchmark script runs more).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.recovery.sweep import recover
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import (
    batches,
    campaign_with,
    drain,
    emails,
    kill_worker,
    recipient_rows,
    reload,
    start_worker,
    wait_for,
)

RUNS = int(os.environ.get("FCR_KILL_RUNS", "20"))
RECIPIENTS = 5000
BATCH = 250
FINAL = {
    RecipientStatus.SENT,
    RecipientStatus.DELIVERED,
    RecipientStatus.FAILED,
    RecipientStatus.UNCERTAIN,
    RecipientStatus.SKIPPED,
}


#: Worker processes race for row locks: these tests run on PostgreSQL only.
pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def kill_app(make_app: Any) -> Flask:
    app: Flask = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=BATCH,
        CAMPAIGN_RETRY_LEASE_SECONDS=30,
        CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS=0,
        CAMPAIGN_RETRY_BACKOFF_BASE=0.1,
        CAMPAIGN_RETRY_BACKOFF_CAP=0.2,
    )
    return app


def _recover_and_settle(app: Flask, campaign: Any) -> None:
    """Move time past the dead worker's lease, sweep, and let the queue finish (retries too)."""
    recover(now=utcnow() + timedelta(seconds=31))
    drain(
        app,
        until=lambda: (
            (c := reload(campaign)).status is not EmailStatus.SENDING
            and c.next_auto_retry_at is None
        ),
        timeout=60,
    )


def _one_run(app: Flask, mailgun: Any, run: int, rng: random.Random) -> dict[str, Any]:
    mailgun.reset()
    mailgun.latency = 0.02
    if rng.random() < 0.3:
        # Sometimes the provider accepts a batch and the answer never comes back in time.
        mailgun.add_fault(
            FaultRule(
                accept_then_hang=True, hang=3.0, times=1, on_calls=frozenset({rng.randint(1, 15)})
            )
        )
    addresses = emails(RECIPIENTS, prefix=f"r{run}x")
    campaign = campaign_with(addresses, list_name=f"kill{run}")
    hostapp.retry.send(campaign)
    queue = get_state().queue(app).queue
    prepare = queue.get_jobs()[0]
    queue.remove(prepare)
    prepare.perform()  # the 20 batch jobs are now queued

    victim, survivor = start_worker(app, burst=True), start_worker(app, burst=True)
    kill_after = rng.randint(0, RECIPIENTS // BATCH - 2)
    wait_for(lambda: mailgun.request_count >= kill_after, 60, f"{kill_after} provider calls")
    time.sleep(rng.uniform(0, 0.05))
    horse_killed = len(kill_worker(victim)) > 1
    fresh = start_worker(app, burst=True)
    for worker in (survivor, fresh):
        assert worker.wait(timeout=120) == 0
    mailgun.latency = 0.0
    # Every live worker is done: only the victim's batch can still be SENDING. Its lease is
    # over once time moves past it; then recovery reconciles it with the event log.
    _recover_and_settle(app, campaign)
    _recover_and_settle(app, campaign)  # the next scheduled sweep: what read timeouts left

    rows = recipient_rows(campaign)
    accepted = mailgun.accepted_emails()
    statuses = Counter(row.status for row in rows.values())
    assert len(rows) == RECIPIENTS
    assert max(accepted.values()) == 1, "an address received the campaign twice"
    assert set(statuses) <= FINAL, statuses
    sent = {
        email
        for email, row in rows.items()
        if row.status in {RecipientStatus.SENT, RecipientStatus.DELIVERED}
    }
    assert sent == set(accepted), "SENT must equal what the provider accepted"
    assert sum(statuses.values()) == RECIPIENTS
    assert all(b.status in {"DONE", "UNCERTAIN", "CANCELLED"} for b in batches(campaign))
    return {
        "kill_after": kill_after,
        "horse_killed": horse_killed,
        "statuses": dict(statuses),
        "status": reload(campaign).status,
    }


def test_killing_a_worker_at_random_moments_loses_nothing_and_sends_nothing_twice(
    kill_app: Flask, mailgun: Any
) -> None:
    rng = random.Random(int(os.environ.get("FCR_KILL_SEED", "2026")))
    outcomes = []
    with kill_app.app_context():
        for run in range(RUNS):
            outcomes.append(_one_run(kill_app, mailgun, run, rng))
    # With reconciliation and automatic retry, every run ends with everyone served.
    assert all(o["status"] is EmailStatus.SENT for o in outcomes), outcomes
    # The kills must have hit work in progress, not only idle worker parents.
    assert sum(o["horse_killed"] for o in outcomes) >= RUNS // 2, outcomes


def _kill_during_first_call(app: Flask, mailgun: Any, rule: FaultRule, seen: Any) -> Any:
    """Send 40 recipients in one batch through a real worker process and SIGKILL it (work
    horse included) while the provider call is in flight, once ``seen()`` holds."""
    mailgun.add_fault(rule)
    campaign = campaign_with(emails(40, prefix="k"), list_name="deterministic")
    hostapp.retry.send(campaign)
    worker = start_worker(app)
    try:
        wait_for(seen, 60, "the provider call")
    finally:
        kill_worker(worker)
    assert reload(campaign).status is EmailStatus.SENDING
    _recover_and_settle(app, campaign)
    return reload(campaign)


def test_killed_after_the_provider_accepted_is_reconciled_to_sent_without_resending(
    kill_app: Flask, mailgun: Any
) -> None:
    with kill_app.app_context():
        rule = FaultRule(accept_then_hang=True, hang=20.0, times=1)
        campaign = _kill_during_first_call(
            kill_app, mailgun, rule, lambda: len(mailgun.accepted_emails()) == 40
        )
        assert campaign.status is EmailStatus.SENT
        assert mailgun.request_count == 1  # nothing was sent again
        assert set(mailgun.accepted_emails().values()) == {1}
        assert {row.status for row in recipient_rows(campaign).values()} == {RecipientStatus.SENT}


def test_killed_before_the_provider_took_it_is_resent_exactly_once(
    kill_app: Flask, mailgun: Any
) -> None:
    with kill_app.app_context():
        rule = FaultRule(hang=20.0, times=1)  # the request arrives, nothing is accepted
        campaign = _kill_during_first_call(
            kill_app, mailgun, rule, lambda: mailgun.request_count == 1
        )
        assert campaign.status is EmailStatus.SENT
        assert mailgun.request_count == 2  # the one lost call, then exactly one resend
        assert mailgun.accepted_emails() == {address: 1 for address in emails(40, prefix="k")}
        assert campaign.retry_count == 1  # the resend was the automatic retry
