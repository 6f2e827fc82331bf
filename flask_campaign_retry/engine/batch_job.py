"""The job that sends one batch: claim, exclude, validate, submit, write, maybe finalize."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from flask_campaign_retry.campaign_fields import column_values
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine import settle_in_one
from flask_campaign_retry.engine.addresses import address_problem
from flask_campaign_retry.engine.chain import ChainBudget, discard_waiting_job
from flask_campaign_retry.engine.claims import CLAIMABLE, Claim, claim_and_take
from flask_campaign_retry.engine.failover import with_failover
from flask_campaign_retry.engine.finalize import finalize_attempt
from flask_campaign_retry.engine.message import build_message
from flask_campaign_retry.engine.message_checks import header_variables, recipient_problem
from flask_campaign_retry.engine.outcomes import BatchOutcome, OutcomeWriter
from flask_campaign_retry.engine.provider_choice import provider_for_campaign
from flask_campaign_retry.engine.reasons import describe
from flask_campaign_retry.engine.settled_signal import announce_settled
from flask_campaign_retry.engine.submission import submit
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.policy.backoff import next_try_at
from flask_campaign_retry.providers.base import BatchRecipient, BatchRef
from flask_campaign_retry.queue.job_ids import batch_job_id
from flask_campaign_retry.queue.names import BATCH_JOB
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import BatchStatus, FailureKind

log = logging.getLogger("flask_campaign_retry")


def _wait_time(state: AppState, batch_id: int) -> tuple[datetime, int] | None:
    """When a queued batch that could not be claimed (paused or not due) should be tried again,
    and its claims so far; None when it is not waiting at all (claimed by someone else,
    settled, halted).

    A batch still QUEUED always gets a time, at least a second from now: the pause may have
    ended between the failed claim and this read, and dropping the job then would strand the
    batch until the recovery sweep.
    """
    batches = state.models.batch.__table__
    attempts = state.models.attempt.__table__
    row = state.db.session.execute(
        sa.select(batches.c.next_try_at, attempts.c.paused_until, batches.c.tries)
        .join(attempts, attempts.c.id == batches.c.attempt_id)
        .where(
            batches.c.id == batch_id,
            batches.c.status.in_(CLAIMABLE),
            attempts.c.halt_reason.is_(None),
        )
    ).first()
    if row is None:
        return None
    moments: list[datetime] = [moment for moment in row[:2] if moment is not None]
    return max([*moments, utcnow() + timedelta(seconds=1)]), int(row[2])


def _cancel_if_halted(state: AppState, batch_id: int) -> int | None:
    """A queued batch of a halted attempt is cancelled (its recipients stay never-submitted)."""
    session = state.db.session
    batches = state.models.batch.__table__
    attempts = state.models.attempt.__table__
    halted = sa.exists().where(
        attempts.c.id == batches.c.attempt_id, attempts.c.halt_reason.isnot(None)
    )
    row = session.execute(
        sa.update(batches)
        .where(batches.c.id == batch_id, batches.c.status.in_(CLAIMABLE), halted)
        .values(status=BatchStatus.CANCELLED, settled_at=utcnow())
        .returning(batches.c.attempt_id)
    ).first()
    if row is None:
        return None
    attempt_id = int(row[0])
    writer = OutcomeWriter(state)
    settled, total = writer.count_into_attempt(BatchOutcome(batch_id, attempt_id, ""))
    session.commit()
    return attempt_id if settled >= total else None


class _LazyCampaign:
    """Loads the campaign row only when a hook needs it (most batches hit the message cache)."""

    def __init__(self, state: AppState, campaign_id: Any) -> None:
        self._state = state
        self._id = campaign_id
        self._row: Any = None

    def get(self) -> Any:
        if self._row is None:
            self._row = self._state.db.session.get(self._state.models.campaign, self._id)
        return self._row


def _exclusions(
    state: AppState, campaign: _LazyCampaign, recipients: list[BatchRecipient]
) -> set[str]:
    hook = state.extension.hooks.exclude_recipients
    if hook is None or not recipients:
        return set()
    return set(hook(campaign.get(), [recipient.email for recipient in recipients]))


def run_batch(batch_id: int) -> str:
    """Send batch ``batch_id``, then further due batches of its attempt while the chain's
    time budget lasts (:mod:`engine.chain`); safe to run twice or concurrently (only one claim
    of a batch wins). Returns what became of ``batch_id`` itself."""
    state = get_state()
    session = state.db.session
    budget = ChainBudget(state)
    token = uuid.uuid4().hex
    claim = claim_and_take(state, token, batch_id=batch_id)
    if claim is None:
        session.rollback()
        finished = _cancel_if_halted(state, batch_id)
        if finished is not None:
            finalize_attempt(state, finished)
            return "cancelled"
        wait = _wait_time(state, batch_id)
        session.rollback()
        if wait is not None:
            _requeue(batch_id, wait[0], wait[1], waiting=True)
            return "waiting"
        return "not claimable"
    session.commit()
    campaign = _LazyCampaign(state, claim.campaign_id)
    result = _send_claimed(state, claim, token, campaign)
    while budget.left():
        token = uuid.uuid4().hex
        further = claim_and_take(state, token, attempt_id=claim.attempt_id)
        if further is None:
            session.rollback()
            break
        session.commit()
        discard_waiting_job(state, further.batch_id, further.tries)
        _send_claimed(state, further, token, campaign)
    return result


def _send_claimed(state: AppState, claim: Claim, token: str, campaign: _LazyCampaign) -> str:
    """Exclude, validate and submit the recipients of a claimed batch, then record it."""
    batch_id, campaign_id, attempt_id = claim.batch_id, claim.campaign_id, claim.attempt_id
    recipients = claim.recipients
    outcome = BatchOutcome(
        batch_id,
        attempt_id,
        token,
        all_claimed_ids=[r.id for r in recipients],
        tries=claim.tries,
        campaign_id=campaign_id,
    )
    try:
        message = build_message(claim.message)
        in_headers = header_variables(message)
        excluded = _exclusions(state, campaign, recipients)
        key, provider = provider_for_campaign(state, current_app, campaign.get)
    except ConfigurationError as exc:
        # Nothing was submitted: the recipients fail as FATAL (retryable once the configuration
        # is fixed) and the attempt halts, so the campaign ends FAILED with the fix-it message
        # instead of staying SENDING while RQ retries the job.
        log.error("provider cannot be built for campaign %s: %s", campaign_id, exc)
        outcome.builder_error = f"the provider cannot be built: {exc}"[:500]
    except Exception as exc:
        log.exception("host hook failed for campaign %s batch %s", campaign_id, batch_id)
        outcome.builder_error = f"the host's hook raised {describe(exc)}"[:500]
    else:
        to_send: list[BatchRecipient] = []
        for recipient in recipients:
            if recipient.email in excluded:
                outcome.skipped_ids.append(recipient.id)
            elif problem := (
                address_problem(recipient.email) or recipient_problem(recipient, in_headers)
            ):
                outcome.invalid.append((recipient.id, problem))
            else:
                to_send.append(recipient)
        ref = BatchRef(campaign_id=campaign_id, attempt_id=attempt_id, batch_id=batch_id)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        if to_send and key == state.settings.provider:
            # Failover covers the configured provider only: a provider the host chose for
            # this campaign (its owner's own server) is never swapped for the global fallback.
            key, provider = with_failover(state, app, key, provider, batch_id)
        outcome.provider = key
        outcome.result = submit(provider, message, to_send, ref)
        _plan_next_try(state, outcome, claim.tries)
    return _record(state, campaign_id, outcome)


def _plan_next_try(state: AppState, outcome: BatchOutcome, tries: int) -> None:
    """Decide whether transient failures wait for another try of this batch, and whether a
    provider quota pauses the whole attempt until its resume time."""
    result = outcome.result
    if result is None or result.fatal is not None:
        return
    transient = [
        group.error
        for group in result.outcomes
        if group.error is not None and group.error.kind is FailureKind.TRANSIENT
    ]
    if not transient:
        return
    resume = max((e.resume_at for e in transient if e.resume_at is not None), default=None)
    if resume is not None:
        outcome.pause_until = resume
    settings = state.settings
    if settings.auto_retry and tries < settings.batch_max_tries:
        outcome.reschedule_at = next_try_at(
            utcnow(), tries, settings.backoff_base, settings.backoff_cap, resume
        )


def _requeue(batch_id: int, at: datetime, tries: int, *, waiting: bool = False) -> None:
    """Queue the batch's next claim for ``at`` under its deterministic job id (a job that only
    waits keeps its claim count, so its id also names the time it waits for)."""
    state = get_state()
    job_id = batch_job_id(state.settings.queue_name, batch_id, tries, at if waiting else None)
    state.queue(current_app._get_current_object()).ensure(  # type: ignore[attr-defined]
        BATCH_JOB, batch_id, job_id=job_id, at=at
    )


def _record(state: AppState, campaign_id: Any, outcome: BatchOutcome) -> str:
    session = state.db.session
    writer = OutcomeWriter(state)
    counted = _settle_write_count(writer, outcome)
    if counted is None:
        session.rollback()
        log.warning("batch %s lost its claim before its outcome was written", outcome.batch_id)
        return "claim lost"
    settled, total = counted
    if outcome.reschedule_at is not None:
        _show_next_try(state, outcome.attempt_id, outcome.reschedule_at)
    session.commit()
    announce_settled(
        state, campaign_id, outcome.attempt_id, outcome.batch_id, outcome.all_claimed_ids
    )
    if outcome.reschedule_at is not None:
        _requeue(outcome.batch_id, outcome.reschedule_at, outcome.tries)
        return "rescheduled"
    if settled >= total:
        finalize_attempt(state, outcome.attempt_id)
    return "settled"


def _settle_write_count(writer: OutcomeWriter, outcome: BatchOutcome) -> tuple[int, int] | None:
    """Record the run; (batches settled, batches total), or None when the claim was lost."""
    if writer.session.get_bind().dialect.name == "postgresql":
        return settle_in_one.record(writer, outcome)
    if not writer.settle_batch(outcome):
        return None
    writer.write_recipients(outcome)
    return writer.count_into_attempt(outcome)


def _show_next_try(state: AppState, attempt_id: int, at: datetime) -> None:
    """Let the campaign say when its next automatic try is (the UI shows it while SENDING)."""
    campaigns = state.models.campaign.__table__
    attempts = state.models.attempt.__table__
    campaign_id = (
        sa.select(attempts.c.campaign_id).where(attempts.c.id == attempt_id).scalar_subquery()
    )
    values = column_values(campaigns, next_auto_retry_at=at)
    state.db.session.execute(
        sa.update(campaigns).where(campaigns.c.id == campaign_id).values(values)
    )
