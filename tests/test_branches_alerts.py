"""Admin-webhook paths no other test takes: a delivery job for an unknown, finished, locked or
misconfigured delivery, or with no secret; the failure streak read through a given, the
attempt's own or the app's session; events of a status that raises no status event; a
notification asked for outside an app context."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.alerts.config import (
    EVENT_REPEATED_FAILURES,
    EVENT_RETRIES_EXHAUSTED,
)
from flask_campaign_retry.alerts.delivery import LOCK_SECONDS, deliver
from flask_campaign_retry.alerts.notify import events_for, failed_streak, notify_attempt_finished
from flask_campaign_retry.alerts.store import create_deliveries, get_delivery, record_key
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import EmailStatus
from tests import hostapp
from tests.helpers import attempts, campaign_with, drain, emails

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS=[HOOK],
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET="s3cret",
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_ALLOW_PRIVATE=True,
    )
    with app.app_context():
        yield app


def _delivery(app: Flask) -> int:
    state = get_state()
    [delivery_id] = create_deliveries(
        state,
        state.queue(app).connection,
        urls=(HOOK,),
        event="campaign.failed",
        event_id="e1",
        campaign_id="1",
        body="{}",
    )
    return delivery_id


def _stored(app: Flask, delivery_id: int) -> Any:
    state = get_state()
    return get_delivery(state, state.queue(app).connection, delivery_id)


def test_an_unknown_delivery_is_missing(app: Flask, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="flask_campaign_retry")
    assert deliver(424242) == "missing"
    assert "admin webhook delivery 424242 is unknown or expired; nothing sent" in caplog.text


@pytest.mark.parametrize("final", ["delivered", "refused", "gave_up"])
def test_a_finished_delivery_is_left_alone(app: Flask, final: str) -> None:
    delivery_id = _delivery(app)
    state = get_state()
    state.queue(app).connection.hset(record_key(state, delivery_id), "state", final)
    assert deliver(delivery_id) == final
    stored = _stored(app, delivery_id)
    assert (stored.state, stored.tries, stored.last_error) == (final, 0, None)


def test_a_delivery_another_job_is_trying_is_busy(app: Flask) -> None:
    delivery_id = _delivery(app)
    state = get_state()
    connection = state.queue(app).connection
    lock = connection.lock(f"{record_key(state, delivery_id)}:lock", timeout=LOCK_SECONDS)
    assert lock.acquire(blocking=False)
    try:
        assert deliver(delivery_id) == "busy"
    finally:
        lock.release()
    stored = _stored(app, delivery_id)
    assert (stored.state, stored.tries) == ("pending", 0)


def test_a_delivery_under_an_invalid_configuration_is_left_pending(app: Flask, caplog: Any) -> None:
    delivery_id = _delivery(app)
    app.config["CAMPAIGN_RETRY_ADMIN_WEBHOOK_MAX_TRIES"] = 0
    assert deliver(delivery_id) == "misconfigured"
    assert f"admin webhook delivery {delivery_id} left pending: invalid configuration" in (
        caplog.text
    )
    stored = _stored(app, delivery_id)
    assert (stored.state, stored.tries) == ("pending", 0)


def test_a_delivery_without_a_secret_is_refused_and_never_sent(make_app: Any) -> None:
    app = make_app()
    with app.app_context():
        delivery_id = _delivery(app)
        assert deliver(delivery_id) == "refused"
        stored = _stored(app, delivery_id)
    assert (stored.state, stored.tries, stored.last_error) == (
        "refused",
        0,
        "refused: no CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET is configured",
    )


def _failed_twice(app: Flask, mailgun: Any) -> Any:
    from flask_campaign_retry.providers.sandbox.rules import FaultRule

    mailgun.add_fault(FaultRule(status=400, times=100))
    campaign = campaign_with(emails(2))
    hostapp.retry.send(campaign)
    drain(app)
    return campaign


def test_the_failure_streak_is_read_through_any_session(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        campaign = _failed_twice(app, mailgun)
        [attempt] = attempts(campaign)
        assert attempt.outcome == EmailStatus.FAILED.value
        assert failed_streak(attempt) == 1  # the attempt's own session
        assert failed_streak(attempt, hostapp.db.session) == 1
        hostapp.db.session.expunge(attempt)
        assert failed_streak(attempt) == 1  # detached: the app's session
        model = get_state().models.attempt
        hostapp.db.session.execute(sa.update(model.__table__).values(outcome="SENT"))
        hostapp.db.session.commit()
        assert failed_streak(attempt) == 0


def test_a_status_with_no_event_of_its_own_raises_only_the_counters_events(app: Flask) -> None:
    campaign = hostapp.new_campaign("nobody")
    campaign.retry_count = campaign.max_retries
    settings = get_state().settings
    assert events_for(campaign, None, EmailStatus.SENDING, settings, streak=0) == [
        EVENT_RETRIES_EXHAUSTED
    ]
    assert events_for(campaign, None, "SENDING", settings, streak=3) == [
        EVENT_RETRIES_EXHAUSTED,
        EVENT_REPEATED_FAILURES,
    ]


def test_a_notification_outside_an_app_context_is_logged_not_sent(
    app: Flask, mailgun: Any, caplog: Any
) -> None:
    campaign = hostapp.new_campaign("nobody")
    state = get_state()
    assert _outside(state, campaign) == []
    assert "admin webhook not sent: notify_attempt_finished needs an app context" in caplog.text


def _outside(state: Any, campaign: Any) -> Any:
    """Call notify_attempt_finished on a thread of its own, where no app context exists."""
    result: list[Any] = []
    thread = threading.Thread(
        target=lambda: result.append(
            notify_attempt_finished(state, campaign, object(), EmailStatus.FAILED)
        )
    )
    thread.start()
    thread.join()
    return result[0]
