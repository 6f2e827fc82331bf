"""Preparation and reconciliation paths no other test takes: a preparation job for an unknown
or ended attempt, or run again on a prepared one; the settle time given as a timedelta or
refused; a provider without an event log; a batch that is gone or holds nothing uncertain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.engine.sending import prepare_attempt
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.queue.job_ids import batch_job_id
from flask_campaign_retry.queue.names import BATCH_JOB
from flask_campaign_retry.reconciliation.reconcile import (
    reconcile_batches,
    reconcile_due,
    settle_seconds_from_config,
)
from flask_campaign_retry.reconciliation.rows import empty_counts
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import EmailStatus, RecipientStatus
from tests import hostapp
from tests.helpers import (
    attempts,
    batches,
    campaign_with,
    drain,
    emails,
    prepare_only,
    reload,
    status_counts,
)


def test_a_preparation_job_for_an_unknown_or_ended_attempt_does_nothing(
    app: Flask, mailgun: Any
) -> None:
    assert prepare_attempt(987654) == "nothing to do"
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)
    [attempt] = attempts(campaign)
    assert attempt.ended_at is not None
    assert prepare_attempt(attempt.id) == "nothing to do"
    assert batches(campaign)[0].tries == 1
    assert mailgun.request_count == 1


def test_a_preparation_run_again_requeues_the_waiting_batches_once(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2, CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS=0)
    with app.app_context():
        addresses = emails(5)
        campaign = campaign_with(addresses)
        first, second, third = prepare_only(app, campaign)
        [attempt] = attempts(campaign)
        queue = get_state().queue(app).queue
        queue_name = get_state().settings.queue_name
        queue.remove(batch_job_id(queue_name, second, 0))

        assert prepare_attempt(attempt.id) == "enqueued 3 batches"

        assert sorted(queue.get_job_ids()) == sorted(
            batch_job_id(queue_name, batch_id, 0) for batch_id in (first, second, third)
        )
        assert [job.func_name for job in queue.get_jobs()] == [BATCH_JOB] * 3
        drain(app)
        assert reload(campaign).status is EmailStatus.SENT
        assert mailgun.accepted_emails() == {address: 1 for address in addresses}


def test_the_settle_time_may_be_a_timedelta_and_is_refused_unless_seconds() -> None:
    key = "CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS"
    assert settle_seconds_from_config({}) == 1800
    assert settle_seconds_from_config({key: timedelta(minutes=5)}) == 300.0
    assert settle_seconds_from_config({key: 0}) == 0
    for bad in (-1, True, "60", timedelta(seconds=-1)):
        with pytest.raises(ConfigurationError) as raised:
            settle_seconds_from_config({key: bad})
        shown = bad.total_seconds() if isinstance(bad, timedelta) else bad
        assert str(raised.value) == (
            f"{key} must be a number of seconds >= 0 (default 1800), got {shown!r}."
        )


def _uncertain(app: Flask) -> Any:
    campaign = campaign_with(emails(2))
    prepare_only(app, campaign)
    r = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(r).where(r.c.campaign_id == campaign.id).values(status=RecipientStatus.UNCERTAIN)
    )
    hostapp.db.session.commit()
    return campaign


def test_a_provider_without_an_event_log_settles_nothing(make_app: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_PROVIDER="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=1)
    with app.app_context():
        campaign = _uncertain(app)
        [batch] = batches(campaign)
        assert reconcile_due(get_state(), settle_seconds=0) == empty_counts()
        # Asked for a batch by name, it says why nothing was settled.
        assert reconcile_batches(get_state(), [batch.id], settle_seconds=0) == {
            **empty_counts(),
            "examined": 2,
            "unsupported": 1,
            "still_uncertain": 2,
        }
        assert status_counts(campaign) == {"UNCERTAIN": 2}


def test_a_batch_that_is_gone_or_holds_nothing_uncertain_is_not_looked_up(
    app: Flask, mailgun: Any
) -> None:
    campaign = campaign_with(emails(2))
    [batch_id] = prepare_only(app, campaign)
    counts = reconcile_batches(get_state(), [987654, batch_id], settle_seconds=0)
    assert counts == empty_counts()
    assert mailgun.request_count == 0
    assert status_counts(campaign) == {"PENDING": 2}
