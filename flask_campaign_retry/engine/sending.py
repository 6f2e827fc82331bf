"""Start a campaign's first send and prepare an attempt's batches."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import current_app

from flask_campaign_retry.campaign_fields import column_values, columns, fields
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.finalize import finalize_attempt
from flask_campaign_retry.engine.message import build_message, message_to_dict
from flask_campaign_retry.engine.message_checks import validate_message
from flask_campaign_retry.engine.preparation_errors import BuilderFailed, preparation_reason
from flask_campaign_retry.engine.reasons import describe, is_transient
from flask_campaign_retry.engine.snapshot import snapshot_recipients
from flask_campaign_retry.engine.targeting import has_recipient_rows, target_recipients
from flask_campaign_retry.errors import TransitionRefused
from flask_campaign_retry.policy.backoff import next_try_at
from flask_campaign_retry.policy.incarnation import discard_stale_rows, ensure_incarnation
from flask_campaign_retry.policy.start_guard import enqueue_preparation_or_undo, previous_values
from flask_campaign_retry.queue.job_ids import batch_job_id
from flask_campaign_retry.queue.names import BATCH_JOB, PREPARE_JOB
from flask_campaign_retry.reconciliation.reconcile import reconcile_uncertain
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import AttemptTrigger, BatchStatus, EmailStatus

log = logging.getLogger("flask_campaign_retry")

SENDABLE = (EmailStatus.DRAFT, EmailStatus.SCHEDULED)


def start_send(
    state: AppState,
    campaign: Any,
    triggered_by: str | None,
    *,
    only_if: sa.ColumnElement[bool] | None = None,
) -> Any:
    """Move ``campaign`` from DRAFT/SCHEDULED to SENDING in one conditional UPDATE and queue the
    preparation of its first attempt. Raises :class:`TransitionRefused` (nothing written) if the
    campaign is not in a sendable state, and :class:`QueueUnavailable` (nothing changed) if
    Redis cannot be reached. ``only_if`` adds a condition on the campaign row to the same UPDATE
    (the scheduled start: still SCHEDULED for the time that is due)."""
    session = state.db.session
    models = state.models
    campaigns = models.campaign.__table__
    pk = campaigns.c.id
    conditions = [pk == campaign.id, columns(campaigns).status.in_(SENDABLE)]
    if only_if is not None:
        conditions.append(only_if)
    restore = previous_values(
        state, campaign.id, "status", "failure_reason", "failed_at", "current_attempt_id"
    )
    moved = session.execute(
        sa.update(campaigns)
        .where(*conditions)
        .values(
            column_values(
                campaigns, status=EmailStatus.SENDING, failure_reason=None, failed_at=None
            )
        )
    )
    if moved.rowcount != 1:
        session.rollback()
        session.refresh(campaign)
        raise TransitionRefused(
            "already_sending" if fields(campaign).status == EmailStatus.SENDING else "not_sendable",
            f"Campaign {campaign.id} is {fields(campaign).status.value}; only DRAFT or SCHEDULED "
            "campaigns can be sent (use retry for FAILED or PARTIALLY_SENT ones).",
        )
    # Rows a deleted campaign with this id left behind are not this campaign's: drop them first.
    incarnation = ensure_incarnation(state, campaign)
    discard_stale_rows(state, campaign.id, incarnation)
    attempt = models.attempt(
        campaign_id=campaign.id,
        incarnation=incarnation,
        number=1,
        trigger=AttemptTrigger.INITIAL.value,
        triggered_by=triggered_by,
        started_at=utcnow(),
    )
    session.add(attempt)
    session.flush()
    session.execute(
        sa.update(campaigns)
        .where(pk == campaign.id)
        .values(column_values(campaigns, current_attempt_id=attempt.id))
    )
    session.commit()
    session.refresh(campaign)
    enqueue_preparation_or_undo(state, campaign, attempt, restore)
    return attempt


def prepare_attempt(attempt_id: int, tries: int = 0) -> str:
    """Snapshot/target the attempt's recipients (once) and enqueue its batch jobs.

    Idempotent: a re-run after a crash finds the attempt prepared and only re-enqueues batches
    still QUEUED (a duplicate batch job is harmless: only one claim wins). A passing database
    fault rolls the preparation back and runs it again later (``tries`` counts the runs).
    """
    state = get_state()
    session = state.db.session
    models = state.models
    attempt = session.get(models.attempt, attempt_id)
    if attempt is None or attempt.ended_at is not None:
        return "nothing to do"
    if not attempt.prepared:
        try:
            attempt = _prepare(state, attempt)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and reported
            _rollback(state)
            return _preparation_failed(state, attempt_id, exc, tries)
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
        if attempt.halt_reason is None and attempt.targeted == 0:
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


def _prepare(state: AppState, attempt: Any) -> Any:
    """Build and check the message, freeze or target the recipients, commit; return the attempt."""
    session = state.db.session
    models = state.models
    campaign_id = attempt.campaign_id
    initial = attempt.trigger == AttemptTrigger.INITIAL.value
    if not initial:
        # Ask the provider's event log about UNCERTAIN recipients first: the ones it
        # accepted must not be resent, the ones it never saw become plainly retryable.
        reconcile_uncertain(state, campaign_id)
        attempt = session.get(models.attempt, attempt.id)
    campaign = session.get(models.campaign, campaign_id)
    builder = state.extension.hooks.message_builder
    assert builder is not None  # checked by CampaignRetry.send/retry before anything ran
    try:
        message = build_message(builder(campaign))
    except Exception as exc:
        raise BuilderFailed("the message_builder raised") from exc
    validate_message(message, state.provider(current_app))
    # Built once per attempt and frozen on its row: every batch sends the same content.
    attempt.message = message_to_dict(message)
    if initial:
        # Only this campaign row's own rows count: a clone's pre-filled list, or none yet.
        incarnation = ensure_incarnation(state, campaign)
        discard_stale_rows(state, campaign.id, incarnation, recipients_only=True)
    if has_recipient_rows(state, campaign.id):
        target_recipients(state, campaign, attempt)
    else:
        snapshot_recipients(state, campaign, attempt)
    attempt.prepared = True
    session.commit()
    return attempt


def _rollback(state: AppState) -> None:
    try:
        state.db.session.rollback()
    except Exception:  # a dead connection: the session drops it and reconnects next time
        log.warning("rollback after a failed preparation failed", exc_info=True)


def _preparation_failed(state: AppState, attempt_id: int, exc: Exception, tries: int) -> str:
    """Run the preparation again later after a passing fault, else fail the attempt honestly."""
    settings = state.settings
    runs = tries + 1
    if _prepared_elsewhere(state, attempt_id):
        # A duplicate job prepared it first (our INSERTs then met its rows): nothing is wrong.
        return "prepared by another job"
    if is_transient(exc) and runs < settings.batch_max_tries:
        at = next_try_at(utcnow(), runs, settings.backoff_base, settings.backoff_cap)
        log.warning(
            "preparing attempt %s hit a passing fault (%s); trying again at %s",
            attempt_id,
            describe(exc),
            at.isoformat(),
        )
        state.queue(current_app._get_current_object()).enqueue(  # type: ignore[attr-defined]
            PREPARE_JOB, attempt_id, runs, at=at
        )
        return "retrying"
    log.error("preparing attempt %s failed", attempt_id, exc_info=exc)
    _fail_preparation(state, attempt_id, preparation_reason(exc, runs))
    return "failed"


def _prepared_elsewhere(state: AppState, attempt_id: int) -> bool:
    attempts = state.models.attempt.__table__
    try:
        prepared = state.db.session.execute(
            sa.select(attempts.c.prepared).where(attempts.c.id == attempt_id)
        ).scalar()
        state.db.session.rollback()
    except Exception:  # noqa: BLE001 - the database is still unreachable: decide without it
        _rollback(state)
        return False
    return bool(prepared)


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
