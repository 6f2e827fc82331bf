"""The automatic retry's rules, exactly: it is planned only for this campaign's FAILED transient
recipients, scheduled under its deterministic job id, and the attempt it starts says who
started it."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.policy import backoff
from flask_campaign_retry.policy.auto_retry import plan_auto_retry
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.queue.job_ids import auto_retry_job_id
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import EmailStatus, FailureKind, RecipientStatus
from tests import hostapp
from tests.helpers import attempts, campaign_with, drain, emails, recipient_rows, reload
from tests.webapp import set_columns

OPEN_ATTEMPT = SimpleNamespace(halt_reason=None)


def _rows(campaign: Any, **values: Any) -> None:
    table = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(table).where(table.c.campaign_id == campaign.id).values(**values)
    )
    hostapp.db.session.commit()


def _plan(campaign: Any) -> Any:
    return plan_auto_retry(
        get_state(), reload(campaign), OPEN_ATTEMPT, EmailStatus.PARTIALLY_SENT, utcnow()
    )


def test_only_this_campaigns_failed_transient_recipients_plan_a_retry(
    app: Flask, mailgun: Any
) -> None:
    """A recipient skipped at a retry keeps its last transient failure kind, and another
    campaign's transient failures are not this one's: neither plans a retry."""
    mine = campaign_with(emails(2))
    theirs = campaign_with(emails(2, prefix="their"), list_name="their")
    for campaign in (mine, theirs):
        hostapp.retry.send(campaign)
    drain(app)
    transient = {"failure_kind": FailureKind.TRANSIENT.value}
    _rows(mine, status=RecipientStatus.SKIPPED, **transient)
    _rows(theirs, status=RecipientStatus.FAILED, **transient)
    assert _plan(mine) is None
    planned = _plan(theirs)
    assert planned is not None and planned > utcnow()
    _rows(mine, status=RecipientStatus.FAILED)
    assert _plan(mine) is not None


def test_the_automatic_retry_is_scheduled_under_its_id_and_signed_automatic(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_MAX_TRIES=1)
    with app.app_context():
        mailgun.add_fault(FaultRule(status=503, times=1))
        campaign = campaign_with(emails(3))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.FAILED
        queue = get_state().queue(app).queue
        job_id = auto_retry_job_id(app.config["CAMPAIGN_RETRY_QUEUE"], campaign.id, 0)
        assert queue.scheduled_job_registry.get_job_ids() == [job_id]
        job = queue.fetch_job(job_id)
        queue.scheduled_job_registry.remove(job)
        hostapp.db.session.rollback()
        assert job.perform() == "started"
        drain(app)
        second = attempts(campaign)[1]
        assert (second.trigger, second.triggered_by) == ("automatic", "automatic")
        assert {r.status for r in recipient_rows(campaign).values()} == {RecipientStatus.SENT}
        campaign = reload(campaign)
        assert (campaign.status, campaign.retry_count, campaign.next_auto_retry_at) == (
            EmailStatus.SENT,
            1,
            None,
        )


def test_the_retry_waits_its_backoff_ceiling_at_most_and_may_end_the_window(
    app: Flask, mailgun: Any, monkeypatch: Any
) -> None:
    """With the jitter at its top, the first automatic retry comes one backoff base after the
    attempt (the ceiling for retry 1), and a retry landing exactly at the window's end is still
    planned; a microsecond later it is not."""
    monkeypatch.setattr(backoff.random, "uniform", lambda low, high: high)
    campaign = campaign_with(emails(2))
    hostapp.retry.send(campaign)
    drain(app)
    _rows(campaign, status=RecipientStatus.FAILED, failure_kind=FailureKind.TRANSIENT.value)
    state = get_state()
    now = utcnow()
    step = timedelta(seconds=state.settings.backoff_base)

    def plan_with_failed_at(failed_at: Any) -> Any:
        set_columns(campaign, failed_at=failed_at)
        return plan_auto_retry(
            state, reload(campaign), OPEN_ATTEMPT, EmailStatus.PARTIALLY_SENT, now
        )

    assert plan_with_failed_at(now) == now + step
    window_end = now + step - state.settings.window
    assert plan_with_failed_at(window_end) == now + step
    assert plan_with_failed_at(window_end - timedelta(microseconds=1)) is None
