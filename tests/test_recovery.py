"""The recovery sweep: expired leases, unfinalized attempts, lost jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.campaign_fields import column_values
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.claims import claim_and_take
from flask_campaign_retry.recovery.sweep import recover, schedule_recovery
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import BatchStatus
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


def _later(app: Flask) -> Any:
    return utcnow() + timedelta(seconds=app.config["CAMPAIGN_RETRY_LEASE_SECONDS"] + 1)


def test_a_batch_whose_worker_died_in_flight_is_made_uncertain(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        campaign = campaign_with(emails(30))
        batch_ids = prepare_only(app, campaign)
        state = get_state()
        # A worker claims the first batch and dies before sending it.
        claim = claim_and_take(state, "dead-worker", batch_id=batch_ids[0])
        assert claim is not None
        assert len(claim.recipients) == 10
        hostapp.db.session.commit()
        drain(app)  # the other two batches go out; the duplicate job for batch 0 is refused
        assert reload(campaign).status is EmailStatus.SENDING
        assert recover().expired_batches == []  # the lease has not expired yet
        report = recover(now=_later(app))
        assert report.expired_batches == [batch_ids[0]]
        found = {b.id: b for b in batches(campaign)}
        assert found[batch_ids[0]].status == BatchStatus.UNCERTAIN
        campaign = reload(campaign)
        assert campaign.status is not EmailStatus.SENDING
        counts = status_counts(campaign)
        assert counts["SENT"] == 20
        assert counts["SENT"] + counts.get("UNCERTAIN", 0) + counts.get("FAILED", 0) == 30
        assert mailgun.request_count == 2
        # A second sweep finds nothing more to do.
        again = recover(now=_later(app))
        assert again.expired_batches == [] and again.finalized_attempts == []


def test_recovery_finalizes_an_attempt_whose_finalizer_never_ran(app: Flask) -> None:
    campaign = campaign_with(emails(15))
    hostapp.retry.send(campaign)
    drain(app)
    assert reload(campaign).status is EmailStatus.SENT
    # As if the worker died between the last batch's commit and the finalizer.
    state = get_state()
    campaigns = state.models.campaign.__table__
    attempt_table = state.models.attempt.__table__
    hostapp.db.session.execute(
        sa.update(campaigns).values(
            column_values(campaigns, status=EmailStatus.SENDING, successful_sends=0)
        )
    )
    hostapp.db.session.execute(sa.update(attempt_table).values(ended_at=None, outcome=None))
    hostapp.db.session.commit()
    report = recover()
    assert report.finalized_attempts == [attempts(campaign)[0].id]
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.SENT and campaign.successful_sends == 15


def test_lost_batch_jobs_are_enqueued_again_once_the_queue_is_idle(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10)
    with app.app_context():
        addresses = emails(25)
        campaign = campaign_with(addresses)
        batch_ids = prepare_only(app, campaign)
        get_state().queue(app).queue.empty()  # Redis lost the batch jobs
        assert recover().requeued_batches == []  # too recent to call lost
        report = recover(now=_later(app))
        assert sorted(report.requeued_batches) == sorted(batch_ids)
        drain(app)
        assert reload(campaign).status is EmailStatus.SENT
        assert mailgun.accepted_emails() == {address: 1 for address in addresses}


def test_a_lost_preparation_job_is_enqueued_again(app: Flask, mailgun: Any) -> None:
    campaign = campaign_with(emails(5))
    hostapp.retry.send(campaign)
    get_state().queue(app).queue.empty()
    report = recover(now=_later(app))
    assert report.requeued_attempts == [attempts(campaign)[0].id]
    drain(app)
    assert reload(campaign).status is EmailStatus.SENT
    assert set(mailgun.accepted_emails().values()) == {1}


def test_recovery_is_scheduled_once_however_many_workers_start(app: Flask) -> None:
    backend = get_state().queue(app)
    assert schedule_recovery(app) is True
    assert schedule_recovery(app) is False
    assert len(backend.queue.scheduled_job_registry.get_job_ids()) == 1


def test_uncertain_recipients_are_not_resent_automatically(make_app: Any, mailgun: Any) -> None:
    from flask_campaign_retry.providers.sandbox.rules import FaultRule

    app = make_app(CAMPAIGN_RETRY_READ_TIMEOUT=0.3)
    with app.app_context():
        mailgun.add_fault(FaultRule(hang=1.0, times=1))
        campaign = campaign_with(emails(6))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.FAILED
        assert campaign.next_auto_retry_at is None
        assert status_counts(campaign) == {RecipientStatus.UNCERTAIN.value: 6}
        assert mailgun.request_count == 1


def test_the_recover_command_runs_a_sweep_and_reports_it(app: Flask, mailgun: Any) -> None:
    import json

    import time_machine

    campaign = campaign_with(emails(5))
    hostapp.retry.send(campaign)
    get_state().queue(app).queue.empty()  # the preparation job is lost
    runner = app.test_cli_runner()
    with time_machine.travel(_later(app), tick=True):
        result = runner.invoke(args=["campaign-retry", "recover"])
    assert result.exit_code == 0, result.output
    # Every part of the report, by name, each with what this sweep did.
    assert json.loads(result.output) == {
        "expired_batches": [],
        "reconciled": {},
        "finalized_attempts": [],
        "requeued_batches": [],
        "requeued_attempts": [attempts(campaign)[0].id],
        "requeued_auto_retries": [],
        "started_scheduled": [],
        "held_scheduled": [],
    }
    drain(app)
    assert reload(campaign).status is EmailStatus.SENT
