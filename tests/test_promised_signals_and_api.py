"""Every blinker signal with its arguments, exactly one finalizer however many callers race,
the public ``delivery()`` and ``recover()``, and the recovery sweep that reschedules itself."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus, signals
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.finalize import finalize_attempt
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.queue.names import RECOVERY_JOB
from flask_campaign_retry.recovery.sweep import schedule_recovery
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, batches, campaign_with, drain, emails, reload
from tests.webapp import failed, partially_sent, set_columns

SIGNALS = {
    "sent": signals.campaign_sent,
    "partially_sent": signals.campaign_partially_sent,
    "failed": signals.campaign_failed,
    "retry_started": signals.retry_started,
    "retries_exhausted": signals.retries_exhausted,
}


@pytest.fixture
def received() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """(signal, campaign id, keyword arguments) of every signal sent during the test."""
    seen: list[tuple[str, Any, dict[str, Any]]] = []
    receivers = {}
    for name, signal in SIGNALS.items():

        def receiver(sender: Any, _name: str = name, **extra: Any) -> None:
            # The attempt's id, read now: the instance belongs to the sender's session.
            if extra.get("attempt") is not None:
                extra["attempt"] = extra["attempt"].id
            seen.append((_name, sender.id, extra))

        receivers[name] = receiver
        signal.connect(receiver)
    yield seen
    for name, signal in SIGNALS.items():
        signal.disconnect(receivers[name])


def _names(seen: list[tuple[str, Any, dict[str, Any]]]) -> list[str]:
    return [name for name, _, _ in seen]


def test_campaign_sent_is_the_only_signal_of_a_clean_send(
    app: Flask, mailgun: Any, received: list[Any]
) -> None:
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)
    [attempt] = attempts(campaign)
    assert received == [("sent", campaign.id, {"attempt": attempt.id, "status": EmailStatus.SENT})]


def test_partial_failed_retry_started_and_exhausted_signals(
    web_app: Flask, mailgun: Any, received: list[Any]
) -> None:
    campaign = partially_sent(web_app, mailgun)
    assert _names(received) == ["partially_sent"]
    assert received[0][2]["status"] is EmailStatus.PARTIALLY_SENT
    campaign = set_columns(campaign, max_retries=1)
    mailgun.add_fault(FaultRule(status=500))
    attempt = hostapp.retry.retry(campaign)
    drain(web_app)
    assert _names(received) == [
        "partially_sent",
        "retry_started",
        "partially_sent",
        "retries_exhausted",
    ]
    started = received[1][2]
    assert started == {"attempt": attempt.id, "trigger": "manual"}
    assert received[3][1] == campaign.id
    assert received[3][2]["status"] is EmailStatus.PARTIALLY_SENT

    received.clear()
    other = failed(web_app, mailgun)
    assert [(name, sender) for name, sender, _ in received] == [("failed", other.id)]
    assert received[0][2]["status"] is EmailStatus.FAILED


def test_a_second_finalizer_changes_nothing_and_signals_nothing(
    app: Flask, mailgun: Any, received: list[Any]
) -> None:
    campaign = campaign_with(emails(2))
    hostapp.retry.send(campaign)
    drain(app)
    [attempt] = attempts(campaign)
    ended = attempt.ended_at
    set_columns(campaign, status=EmailStatus.FAILED)  # would be overwritten by a second finalize
    assert finalize_attempt(get_state(), attempt.id) is None
    assert reload(campaign).status is EmailStatus.FAILED
    assert attempts(campaign)[0].ended_at == ended
    assert _names(received) == ["sent"]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_threads_racing_to_finalize_one_attempt_finalize_it_once(
    app: Flask, mailgun: Any, received: list[Any]
) -> None:
    campaign = campaign_with(emails(4))
    hostapp.retry.send(campaign)
    drain(app)
    [attempt] = attempts(campaign)
    attempt_id = attempt.id
    table = get_state().models.attempt.__table__
    hostapp.db.session.execute(sa.update(table).values(ended_at=None, outcome=None))
    hostapp.db.session.commit()
    received.clear()
    start = threading.Barrier(8)
    results: list[Any] = []

    def finalize() -> None:
        with app.app_context():
            start.wait(timeout=30)
            try:
                results.append(finalize_attempt(get_state(), attempt_id))
            except Exception as exc:
                results.append(exc)

    threads = [threading.Thread(target=finalize) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(results) == {EmailStatus.SENT: 1, None: 7}
    assert _names(received) == ["sent"]


def test_delivery_reports_the_campaign_as_it_stands(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    report = hostapp.retry.delivery(campaign)
    assert {key: report[key] for key in ("id", "status", "total_recipients")} == {
        "id": campaign.id,
        "status": "PARTIALLY_SENT",
        "total_recipients": 6,
    }
    assert (report["successful_sends"], report["accepted"]) == (4, 4)
    assert report["recipients"]["SENT"] == 4 and report["recipients"]["FAILED"] == 2
    assert (report["retry"]["allowed"], report["retry"]["retryable"]) == (True, 2)
    assert [a["number"] for a in report["attempts"]] == [1]
    assert report["retry_count"] == 0 and report["cloned_from_id"] is None


def test_recover_expires_a_dead_workers_lease(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        campaign = campaign_with(emails(3))
        hostapp.retry.send(campaign)
        drain(app)
        [batch] = batches(campaign)
        table = get_state().models.batch.__table__
        # As if a worker had claimed it and died: SENDING with a lease that ran out.
        hostapp.db.session.execute(
            sa.update(table)
            .where(table.c.id == batch.id)
            .values(status="SENDING", lease_until=utcnow() - timedelta(seconds=1))
        )
        hostapp.db.session.commit()
        report = hostapp.retry.recover()
        assert report.expired_batches == [batch.id]
        assert batches(campaign)[0].status == "UNCERTAIN"
        assert hostapp.retry.recover().expired_batches == []


def test_the_recovery_sweep_reschedules_itself(app: Flask) -> None:
    backend = get_state().queue(app)
    registry = backend.queue.scheduled_job_registry
    assert schedule_recovery(app) is True
    [first_id] = registry.get_job_ids()
    first = backend.queue.fetch_job(first_id)
    assert first.func_name == RECOVERY_JOB
    interval = timedelta(seconds=max(10, app.config["CAMPAIGN_RETRY_LEASE_SECONDS"] // 3))
    # RQ stores the time in whole seconds.
    delay = registry.get_scheduled_time(first).replace(tzinfo=None) - utcnow()
    assert interval - timedelta(seconds=5) <= delay <= interval + timedelta(seconds=1)
    registry.remove(first)
    assert first.perform() == "recovered 0 expired batches"
    [second_id] = registry.get_job_ids()
    assert second_id != first_id
    assert backend.queue.fetch_job(second_id).func_name == RECOVERY_JOB
    assert schedule_recovery(app) is False  # the chain exists: a worker start adds nothing
    assert registry.get_job_ids() == [second_id]
