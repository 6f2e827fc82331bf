"""Settle a finished attempt: exactly one caller computes the campaign's status and counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.alerts.notify import notify_attempt_finished
from flask_campaign_retry.campaign_fields import column_values, columns, fields
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.failure_summary import summarize_failures
from flask_campaign_retry.policy.auto_retry import enqueue_auto_retry, plan_auto_retry
from flask_campaign_retry.signals import emit_campaign_finished
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import EmailStatus, RecipientStatus

log = logging.getLogger("flask_campaign_retry")


def campaign_status(accepted: int, considered: int, *, halted: bool) -> EmailStatus:
    """SENT when every considered recipient was accepted, PARTIALLY_SENT when some, else FAILED.

    Skipped recipients are not considered. With nobody to consider, a halted attempt (empty list,
    the loader failed) is FAILED; otherwise nothing failed (everyone was excluded), so SENT.
    """
    if considered == 0:
        return EmailStatus.FAILED if halted else EmailStatus.SENT
    if accepted >= considered:
        return EmailStatus.SENT
    if accepted > 0:
        return EmailStatus.PARTIALLY_SENT
    return EmailStatus.FAILED


def _recipient_counts(session: Any, recipients: sa.Table, campaign_id: Any) -> dict[str, int]:
    rows = session.execute(
        sa.select(recipients.c.status, sa.func.count())
        .where(recipients.c.campaign_id == campaign_id)
        .group_by(recipients.c.status)
    ).all()
    return {str(status): int(n) for status, n in rows}


def _recount_attempt(state: AppState, attempt: Any) -> None:
    """Set the attempt's final counts from its recipients' rows: the running counters can lag
    behind a reconciliation that settled UNCERTAIN recipients after the fact."""
    recipients = state.models.recipient.__table__
    batches = state.models.batch.__table__
    rows = state.db.session.execute(
        sa.select(recipients.c.status, sa.func.count())
        .join(batches, batches.c.id == recipients.c.batch_id)
        .where(batches.c.attempt_id == attempt.id)
        .group_by(recipients.c.status)
    ).all()
    counts = {str(status): int(n) for status, n in rows}
    attempt.sent = counts.get(RecipientStatus.SENT, 0) + counts.get(RecipientStatus.DELIVERED, 0)
    attempt.failed = counts.get(RecipientStatus.FAILED, 0)
    attempt.uncertain = counts.get(RecipientStatus.UNCERTAIN, 0)
    attempt.skipped = counts.get(RecipientStatus.SKIPPED, 0)


@dataclass(frozen=True)
class CampaignOutcome:
    """A campaign's status and counts as its recipient rows stand now."""

    status: EmailStatus
    accepted: int
    considered: int
    total: int
    reason: str | None

    def apply(self, campaign: Any) -> None:
        fields(campaign).status = self.status
        fields(campaign).successful_sends = self.accepted
        fields(campaign).total_recipients = self.total
        fields(campaign).failure_reason = self.reason


def _campaign_outcome(state: AppState, campaign: Any, halt_reason: str | None) -> CampaignOutcome:
    session = state.db.session
    recipients = state.models.recipient.__table__
    counts = _recipient_counts(session, recipients, campaign.id)
    total = sum(counts.values())
    accepted = counts.get(RecipientStatus.SENT, 0) + counts.get(RecipientStatus.DELIVERED, 0)
    considered = total - counts.get(RecipientStatus.SKIPPED, 0)
    reason = summarize_failures(
        session,
        recipients,
        campaign.id,
        not_accepted=considered - accepted,
        considered=considered,
        never_submitted=counts.get(RecipientStatus.PENDING, 0),
        halt_reason=halt_reason,
    )
    status = campaign_status(accepted, considered, halted=halt_reason is not None)
    return CampaignOutcome(status, accepted, considered, total, reason)


def refresh_campaign_status(state: AppState, campaign_id: Any) -> EmailStatus | None:
    """Recompute a finished campaign's status after its rows changed outside an attempt (a
    reconciliation settled UNCERTAIN recipients, delivery events arrived).

    A SENDING campaign is left alone: its attempt's finalizer will do this. ``failed_at`` keeps
    its value while the campaign still has failures, so the retry window does not move.
    """
    session = state.db.session
    models = state.models
    campaign = session.get(models.campaign, campaign_id)
    if campaign is None or fields(campaign).status is EmailStatus.SENDING:
        session.rollback()
        return None
    attempts = models.attempt.__table__
    halt_reason = session.execute(
        sa.select(attempts.c.halt_reason).where(
            attempts.c.id == fields(campaign).current_attempt_id
        )
    ).scalar()
    before = EmailStatus(fields(campaign).status)
    outcome = _campaign_outcome(state, campaign, halt_reason)
    campaigns = models.campaign.__table__
    changed = session.execute(
        sa.update(campaigns)
        .where(campaigns.c.id == campaign_id, columns(campaigns).status == before)
        .values(
            column_values(
                campaigns,
                status=outcome.status,
                successful_sends=outcome.accepted,
                total_recipients=outcome.total,
                failure_reason=outcome.reason,
                failed_at=None
                if outcome.status is EmailStatus.SENT
                else columns(campaigns).failed_at,
            )
        )
    ).rowcount
    session.commit()
    if changed and outcome.status is EmailStatus.SENT and before is not EmailStatus.SENT:
        session.refresh(campaign)
        emit_campaign_finished(campaign, None, outcome.status)
    return outcome.status


def finalize_attempt(state: AppState, attempt_id: int) -> EmailStatus | None:
    """Close ``attempt_id`` and set its campaign's status; None if someone else already did.

    The close is a compare-and-set on ``ended_at``, so concurrent callers finalize once.
    """
    session = state.db.session
    models = state.models
    attempts = models.attempt.__table__
    now = utcnow()
    closed = session.execute(
        sa.update(attempts)
        .where(attempts.c.id == attempt_id, attempts.c.ended_at.is_(None))
        .values(ended_at=now)
    )
    if closed.rowcount != 1:
        session.rollback()
        return None
    # One SELECT that also overwrites a stale copy in the identity map (instead of get+refresh).
    attempt = session.get(models.attempt, attempt_id, populate_existing=True)
    campaign = session.get(models.campaign, attempt.campaign_id)
    outcome = _campaign_outcome(state, campaign, attempt.halt_reason)
    status, accepted, considered = outcome.status, outcome.accepted, outcome.considered
    _recount_attempt(state, attempt)
    attempt_status = campaign_status(
        attempt.sent, attempt.targeted - attempt.skipped, halted=attempt.halt_reason is not None
    )
    attempt.outcome = attempt_status.value
    attempt.error_summary = outcome.reason
    outcome.apply(campaign)
    fields(campaign).last_attempt_at = now
    # The retry window runs from the first failure: a failed retry does not extend it.
    fields(campaign).failed_at = (
        None if status is EmailStatus.SENT else (fields(campaign).failed_at or now)
    )
    auto_retry_at = plan_auto_retry(state, campaign, attempt, status, now)
    fields(campaign).next_auto_retry_at = auto_retry_at
    session.commit()
    if auto_retry_at is not None:
        enqueue_auto_retry(state, campaign.id, auto_retry_at, fields(campaign).retry_count)
    log.info(
        "campaign %s attempt %s finished %s: %d of %d accepted",
        campaign.id,
        attempt_id,
        status.value,
        accepted,
        considered,
        extra={
            "campaign_retry": {
                "event": "attempt_finished",
                "campaign_id": campaign.id,
                "attempt_id": attempt_id,
                "status": status.value,
                "accepted": accepted,
                "considered": considered,
            }
        },
    )
    emit_campaign_finished(campaign, attempt, status)
    notify_attempt_finished(state, campaign, attempt, status)
    return status
