"""Kill tests against a late event log: Mailgun shows an accepted send in its Events API only
some time after accepting it. With a real settle time longer than that lag, a worker SIGKILLed
mid-call still leaves 0 duplicates and 0 lost recipients: reconciliation does not call a batch
"never accepted" before its events could have appeared.
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
    campaign_with,
    drain,
    emails,
    kill_worker,
    recipient_rows,
    reload,
    start_worker,
    wait_for,
)

#: Seconds before an event shows in the fake's Events API, and the settle time: longer than
#: the lag by more than the second that the sweeps below add to move past the lease.
LAG = 1.5
SETTLE = 3.0
LEASE = 30
RUNS = int(os.environ.get("FCR_KILL_DELAYED_RUNS", "3"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


@pytest.fixture
def late_app(make_app: Any, mailgun: Any) -> Flask:
    app: Flask = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=50,
        CAMPAIGN_RETRY_LEASE_SECONDS=LEASE,
        CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS=SETTLE,
        CAMPAIGN_RETRY_BACKOFF_BASE=0.1,
        CAMPAIGN_RETRY_BACKOFF_CAP=0.2,
        CAMPAIGN_RETRY_AUTO_RETRY=False,
    )
    mailgun.events.set_visibility(lag=LAG)
    return app


def _sweep_until_certain(app: Flask, campaign: Any, timeout: float = 60) -> Any:
    """Sweep (time moved past the dead worker's lease) until no recipient is UNCERTAIN; then,
    as a person would, retry whoever is confirmed not sent, until the campaign is SENT."""
    deadline = time.monotonic() + timeout
    while True:
        recover(now=utcnow() + timedelta(seconds=LEASE + 1))
        drain(app)
        current = reload(campaign)
        statuses = {row.status for row in recipient_rows(current).values()}
        if current.status is not EmailStatus.SENDING and RecipientStatus.UNCERTAIN not in statuses:
            if current.status is EmailStatus.SENT:
                return current
            hostapp.retry.retry(current)
            drain(app)
            continue
        if time.monotonic() > deadline:
            raise AssertionError(f"still uncertain: {Counter(statuses)}")
        time.sleep(0.25)


def _assert_each_once(mailgun: Any, campaign: Any, addresses: list[str]) -> None:
    accepted = mailgun.accepted_emails()
    assert accepted == {address: 1 for address in addresses}, "lost or sent twice"
    assert {row.status for row in recipient_rows(campaign).values()} == {RecipientStatus.SENT}


def _kill_in_flight(app: Flask, mailgun: Any, rule: FaultRule, seen: Any) -> tuple[Any, list[str]]:
    mailgun.add_fault(rule)
    addresses = emails(40, prefix="late")
    campaign = campaign_with(addresses, list_name="late")
    hostapp.retry.send(campaign)
    worker = start_worker(app)
    try:
        wait_for(seen, 60, "the provider call")
    finally:
        kill_worker(worker)
    return campaign, addresses


def test_killed_after_a_late_acceptance_is_reconciled_without_resending(
    late_app: Flask, mailgun: Any
) -> None:
    with late_app.app_context():
        rule = FaultRule(accept_then_hang=True, hang=20.0, times=1)
        campaign, addresses = _kill_in_flight(
            late_app, mailgun, rule, lambda: len(mailgun.accepted_emails()) == 40
        )
        # Right after the kill the acceptance is not in the Events API yet.
        assert mailgun.events.visible() == []
        campaign = _sweep_until_certain(late_app, campaign)
        assert mailgun.request_count == 1  # nothing was sent again
        assert campaign.retry_count == 0
        _assert_each_once(mailgun, campaign, addresses)


def test_killed_before_acceptance_is_resent_once_after_the_settle_time(
    late_app: Flask, mailgun: Any
) -> None:
    with late_app.app_context():
        rule = FaultRule(hang=20.0, times=1)  # the request arrives, nothing is accepted
        campaign, addresses = _kill_in_flight(
            late_app, mailgun, rule, lambda: mailgun.request_count == 1
        )
        campaign = _sweep_until_certain(late_app, campaign)
        assert mailgun.request_count == 2  # the lost call, then exactly one resend
        assert campaign.retry_count == 1
        _assert_each_once(mailgun, campaign, addresses)


def test_random_kills_against_late_events_lose_nothing_and_send_nothing_twice(
    late_app: Flask, mailgun: Any
) -> None:
    rng = random.Random(int(os.environ.get("FCR_KILL_SEED", "2026")))
    with late_app.app_context():
        for run in range(RUNS):
            mailgun.reset()
            mailgun.events.set_visibility(lag=LAG)
            mailgun.latency = 0.02
            if rng.random() < 0.5:
                on_call = frozenset({rng.randint(1, 8)})
                mailgun.add_fault(
                    FaultRule(accept_then_hang=True, hang=3.0, times=1, on_calls=on_call)
                )
            addresses = emails(500, prefix=f"late{run}x")
            campaign = campaign_with(addresses, list_name=f"late{run}")
            hostapp.retry.send(campaign)
            queue = get_state().queue(late_app).queue
            prepare = queue.get_jobs()[0]
            queue.remove(prepare)
            prepare.perform()
            victim, survivor = (
                start_worker(late_app, burst=True),
                start_worker(late_app, burst=True),
            )
            kill_after = rng.randint(0, 8)
            wait_for(lambda n=kill_after: mailgun.request_count >= n, 60, "provider calls")
            time.sleep(rng.uniform(0, 0.05))
            kill_worker(victim)
            fresh = start_worker(late_app, burst=True)
            for worker in (survivor, fresh):
                assert worker.wait(timeout=120) == 0
            mailgun.latency = 0.0
            campaign = _sweep_until_certain(late_app, campaign)
            _assert_each_once(mailgun, campaign, addresses)
