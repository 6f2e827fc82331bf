"""Campaign-level automatic retry: a campaign that ended FAILED or PARTIALLY_SENT with
transient failures retries itself after backoff, counted against max_retries, inside the window.

A fatal halt (bad API key, domain refused) needs a person, so it never retries by itself;
permanent failures are never retried, but they do not stop the transient ones from being
retried.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from flask_campaign_retry.campaign_fields import column_values, fields
from flask_campaign_retry.errors import TransitionRefused
from flask_campaign_retry.policy.backoff import next_try_at
from flask_campaign_retry.policy.retrying import start_retry
from flask_campaign_retry.queue.job_ids import auto_retry_job_id
from flask_campaign_retry.queue.names import AUTO_RETRY_JOB
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import AttemptTrigger, EmailStatus, FailureKind, RecipientStatus

log = logging.getLogger("flask_campaign_retry")


def plan_auto_retry(
    state: AppState, campaign: Any, attempt: Any, status: EmailStatus, now: datetime
) -> datetime | None:
    """The time of the campaign's automatic retry, or None when it should not retry itself."""
    settings = state.settings
    if not settings.auto_retry or status is EmailStatus.SENT or attempt.halt_reason:
        return None
    if fields(campaign).retry_count >= fields(campaign).max_retries:
        return None
    recipients = state.models.recipient.__table__
    r = recipients.c
    transient = state.db.session.execute(
        sa.select(sa.literal(1))
        .where(
            r.campaign_id == campaign.id,
            r.status == RecipientStatus.FAILED,
            r.failure_kind == FailureKind.TRANSIENT.value,
        )
        .limit(1)
    ).first()
    if transient is None:
        return None
    at = next_try_at(
        now, fields(campaign).retry_count + 1, settings.backoff_base, settings.backoff_cap
    )
    if at > (fields(campaign).failed_at or now) + settings.window:
        return None
    return at


def enqueue_auto_retry(state: AppState, campaign_id: Any, at: datetime, retry_count: int) -> None:
    """Schedule the automatic retry planned after ``retry_count`` retries (one job per plan)."""
    job_id = auto_retry_job_id(state.settings.queue_name, campaign_id, retry_count)
    state.queue(current_app._get_current_object()).ensure(  # type: ignore[attr-defined]
        AUTO_RETRY_JOB, campaign_id, job_id=job_id, at=at
    )


def run_auto_retry(campaign_id: Any) -> str:
    """The scheduled job: start an automatic retry unless the campaign moved on meanwhile."""
    state = get_state()
    session = state.db.session
    campaign = session.get(state.models.campaign, campaign_id)
    if campaign is None or fields(campaign).next_auto_retry_at is None:
        return "not scheduled"

    try:
        start_retry(state, campaign, trigger=AttemptTrigger.AUTOMATIC, triggered_by="automatic")
    except TransitionRefused as refused:
        campaigns = state.models.campaign.__table__
        session.execute(
            sa.update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(column_values(campaigns, next_auto_retry_at=None))
        )
        session.commit()
        log.info("automatic retry of campaign %s not started: %s", campaign_id, refused.reason)
        return f"refused: {refused.code}"
    return "started"
