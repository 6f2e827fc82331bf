"""Start a campaign's first send and prepare an attempt's batches."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import current_app

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.finalize import finalize_attempt
from flask_campaign_retry.engine.message import build_message, message_to_dict
from flask_campaign_retry.engine.snapshot import snapshot_recipients
from flask_campaign_retry.engine.targeting import has_recipient_rows, target_recipients
from flask_campaign_retry.errors import TransitionRefused
from flask_campaign_retry.policy.start_guard import enqueue_preparation_or_undo, previous_values
from flask_campaign_retry.queue.job_ids import batch_job_id
from flask_campaign_retry.queue.names import BATCH_JOB
from flask_campaign_retry.reconciliation.reconcile import reconcile_uncertain
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import AttemptTrigger, BatchStatus, EmailStatus

log = logging.getLogger("flask_campaign_retry")

SENDABLE = (EmailStatus.DRAFT, EmailStatus.SCHEDULED)


def start_send(state: AppState, campaign: Any, triggered_by: str | None) -> Any:
    """Move ``campaign`` from DRAFT/SCHEDULED to SENDING in one conditional UPDATE and queue the
    preparation of its first attempt. Raises :class:`TransitionRefused` (nothing written) if the
    campaign is not in a sendable state, and :class:`QueueUnavailable` (nothing changed) if
    Redis cannot be reached."""
    session = state.db.session
    models = state.models
    campaigns = models.campaign.__table__
    pk = campaigns.c.id
    restore = previous_values(
        state, campaign.id, "status", "failure_reason", "failed_at", "current_attempt_id"
    )
    moved = session.execute(
        sa.update(campaigns)
        .where(pk == campaign.id, campaigns.c.status.in_(SENDABLE))
        .values(status=EmailStatus.SENDING, failure_reason=None, failed_at=None)
    )
    if moved.rowcount != 1:
        session.rollback()
        session.refresh(campaign)
        raise TransitionRefused(
            "already_sending" if campaign.status == EmailStatus.SENDING else "not_sendable",
            f"Campaign {campaign.id} is {campaign.status.value}; only DRAFT or SCHEDULED "
            "campaigns can be sent (use retry for FAILED or PARTIALLY_SENT ones).",
        )
    attempt = models.attempt(
        campaign_id=campaign.id,
        number=1,
        trigger=AttemptTrigger.INITIAL.value,
        triggered_by=triggered_by,
        started_at=utcnow(),
    )
    session.add(attempt)
    session.flush()
    session.execute(
        sa.update(campaigns).where(pk == campaign.id).values(current_attempt_id=attempt.id)
    )
    session.commit()
    session.refresh(campaign)
    enqueue_preparation_or_undo(state, campaign, attempt, restore)
    return attempt


def prepare_attempt(attempt_id: int) -> str:
    """Snapshot/target the attempt's recipients (once) and enqueue its batch jobs.

    Idempotent: a re-run after a crash finds the attempt prepared and only re-enqueues batches
    still QUEUED (a duplicate batch job is harmless: only one claim wins).
    """
    state = get_state()
    session = state.db.session
    models = state.models
    attempt = session.get(models.attempt, attempt_id)
    if attempt is None or attempt.ended_at is not None:
        return "nothing to do"
    if not attempt.prepared:
        campaign_id = attempt.campaign_id
        if attempt.trigger != AttemptTrigger.INITIAL.value:
            # Ask the provider's event log about UNCERTAIN recipients first: the ones it
            # accepted must not be resent, the ones it never saw become plainly retryable.
            reconcile_uncertain(state, campaign_id)
            attempt = session.get(models.attempt, attempt_id)
        campaign = session.get(models.campaign, campaign_id)
        builder = state.extension.hooks.message_builder
        assert builder is not None  # checked by CampaignRetry.send/retry before anything ran
        try:
            # Built once per attempt and frozen on its row: every batch sends the same content.
            attempt.message = message_to_dict(build_message(builder(campaign)))
        except Exception as exc:
            session.rollback()
            log.exception("message_builder failed for campaign %s", campaign_id)
            _fail_preparation(
                state, attempt_id, f"the message_builder raised {type(exc).__name__}: {exc}"
            )
            return "failed"
        try:
            if has_recipient_rows(state, campaign.id):
                target_recipients(state, campaign, attempt)
            else:
                snapshot_recipients(state, campaign, attempt)
        except (sa.exc.OperationalError, sa.exc.InterfaceError):
            # The database went away (restart, terminated connection): nothing was committed,
            # and the job runs again after a backoff (queue.job_class) instead of failing the
            # campaign with an empty list.
            session.rollback()
            raise
        except Exception as exc:
            session.rollback()
            log.exception("recipients_loader failed for campaign %s", attempt.campaign_id)
            _fail_preparation(
                state, attempt_id, f"the recipients_loader raised {type(exc).__name__}: {exc}"
            )
            return "failed"
        attempt.prepared = True
        session.commit()
    batches = models.batch.__table__
    queued = [
        (int(batch_id), int(tries))
        for batch_id, tries in session.execute(
            sa.select(batches.c.id, batches.c.tries)
            .where(batches.c.attempt_id == attempt_id, batches.c.status == BatchStatus.QUEUED)
            .order_by(batches.c.seq)
        )
    ]
    session.commit()
    if attempt.batches_total == 0:
        if attempt.halt_reason is None:
            initial = attempt.trigger == AttemptTrigger.INITIAL.value
            _halt(
                state,
                attempt_id,
                "the recipient list was empty" if initial else "no recipient was left to retry",
            )
        finalize_attempt(state, attempt_id)
        return "empty"
    queue_name = state.settings.queue_name
    state.queue(current_app._get_current_object()).enqueue_many(  # type: ignore[attr-defined]
        BATCH_JOB,
        [batch_id for batch_id, _ in queued],
        job_ids=[batch_job_id(queue_name, batch_id, tries) for batch_id, tries in queued],
    )
    return f"enqueued {len(queued)} batches"


def _halt(state: AppState, attempt_id: int, reason: str) -> None:
    attempts = state.models.attempt.__table__
    state.db.session.execute(
        sa.update(attempts)
        .where(attempts.c.id == attempt_id, attempts.c.halt_reason.is_(None))
        .values(halt_reason=reason[:500], prepared=True)
    )
    state.db.session.commit()


def _fail_preparation(state: AppState, attempt_id: int, reason: str) -> None:
    _halt(state, attempt_id, reason)
    finalize_attempt(state, attempt_id)
