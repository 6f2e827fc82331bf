"""Manual and automatic retries: one atomic transition, then only the failed recipients."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.campaign_fields import column_values, columns, fields
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.errors import TransitionRefused
from flask_campaign_retry.policy.eligibility import (
    RETRYABLE_CAMPAIGN_STATUSES,
    retry_eligibility,
    retryable_condition,
)
from flask_campaign_retry.policy.start_guard import enqueue_preparation_or_undo, previous_values
from flask_campaign_retry.signals import retry_started
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import AttemptTrigger, EmailStatus


def start_retry(
    state: AppState,
    campaign: Any,
    *,
    trigger: AttemptTrigger = AttemptTrigger.MANUAL,
    include_uncertain: bool = False,
    triggered_by: str | None = None,
) -> Any:
    """Move the campaign to SENDING with one conditional UPDATE that re-checks every rule.

    Of any number of concurrent callers exactly one wins; the others get
    :class:`TransitionRefused` with the reason as it stands after the winner's commit. When
    Redis cannot be reached nothing changes and :class:`QueueUnavailable` is raised.
    """
    session = state.db.session
    models = state.models
    campaigns = models.campaign.__table__
    recipients = models.recipient.__table__
    c = columns(campaigns)
    now = utcnow()
    has_targets = sa.or_(
        sa.exists().where(retryable_condition(recipients, c.id, include_uncertain)),
        # A list never frozen (the preparation failed before): the retry runs the loader.
        ~sa.exists().where(recipients.c.campaign_id == c.id),
    )
    restore = previous_values(
        state, campaign.id, "status", "retry_count", "next_auto_retry_at", "current_attempt_id"
    )
    moved = session.execute(
        sa.update(campaigns)
        .where(
            c.id == campaign.id,
            c.status.in_(RETRYABLE_CAMPAIGN_STATUSES),
            c.failed_at.isnot(None),
            c.failed_at >= now - state.settings.window,
            c.retry_count < c.max_retries,
            has_targets,
        )
        .values(
            column_values(
                campaigns,
                status=EmailStatus.SENDING,
                retry_count=c.retry_count + 1,
                next_auto_retry_at=None,
            )
        )
    )
    if moved.rowcount != 1:
        session.rollback()
        session.refresh(campaign)
        verdict = retry_eligibility(state, campaign, include_uncertain=include_uncertain, now=now)
        code = verdict.code or "already_sending"
        reason = verdict.reason or "Another retry started first."
        raise TransitionRefused(code, reason)
    attempts = models.attempt.__table__
    number = session.execute(
        sa.select(sa.func.coalesce(sa.func.max(attempts.c.number), 0) + 1).where(
            attempts.c.campaign_id == campaign.id
        )
    ).scalar_one()
    attempt = models.attempt(
        campaign_id=campaign.id,
        number=number,
        trigger=trigger.value,
        triggered_by=triggered_by,
        started_at=now,
        include_uncertain=include_uncertain,
        incarnation=fields(campaign).retry_incarnation,
    )
    session.add(attempt)
    session.flush()
    session.execute(
        sa.update(campaigns)
        .where(c.id == campaign.id)
        .values(column_values(campaigns, current_attempt_id=attempt.id))
    )
    session.commit()
    session.refresh(campaign)

    enqueue_preparation_or_undo(state, campaign, attempt, restore)
    retry_started.send(campaign, attempt=attempt, trigger=trigger.value)
    return attempt
