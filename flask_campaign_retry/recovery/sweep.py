"""The recovery sweep: nothing lost, nothing sent twice, no campaign SENDING forever.

Runs at worker start, on a schedule through RQ's scheduler, and by hand
(``flask campaign-retry recover``). Each step is a compare-and-set, so sweeps running
concurrently, or a sweep racing a slow but live worker, change each row once:

1. A batch SENDING past its lease lost its worker: the batch and its in-flight recipients become
   UNCERTAIN (the provider may have accepted them).
2. UNCERTAIN recipients (from step 1 or from read timeouts) are reconciled with the provider's
   event log where the provider can do that: accepted → SENT, confirmed absent → retryable.
3. An attempt whose batches have all settled but which was never finalized is finalized.
4. SCHEDULED campaigns whose time passed while nothing ran (downtime, a lost job) are started
   if they are still within ``CAMPAIGN_RETRY_SCHEDULE_GRACE``; older ones stay SCHEDULED with
   the reason (``engine.scheduling.start_due``, the same compare-and-set as the start job).
5. Work whose job is missing from Redis (a QUEUED batch due, an unprepared attempt, a missed
   automatic retry) is enqueued again under its deterministic job id, busy queue or not;
   duplicates are harmless anyway because only a claim can submit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.finalize import finalize_attempt, refresh_campaign_status
from flask_campaign_retry.engine.scheduling import overdue_campaigns, start_due
from flask_campaign_retry.queue.job_ids import auto_retry_job_id, batch_job_id, prepare_job_id
from flask_campaign_retry.queue.names import AUTO_RETRY_JOB, BATCH_JOB, PREPARE_JOB, RECOVERY_JOB
from flask_campaign_retry.reconciliation.reconcile import reconcile_batches
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import BatchStatus, EmailStatus, FailureKind, RecipientStatus

log = logging.getLogger("flask_campaign_retry")

#: Batches looked up per sweep: bounds the time one sweep spends asking the provider.
RECONCILE_BATCHES_PER_SWEEP = 200
LOST_IN_FLIGHT = "the worker stopped while this batch was in flight; the provider may have it"
#: Work is requeued only once it has been due this long without a live job: whoever
#: committed it has had time to enqueue it (a duplicate would be harmless anyway).
REQUEUE_AFTER_SECONDS = 10


@dataclass
class RecoveryReport:
    """What one sweep did (printed by the CLI, logged by the scheduled job)."""

    expired_batches: list[int] = field(default_factory=list)
    reconciled: dict[str, int] = field(default_factory=dict)
    finalized_attempts: list[int] = field(default_factory=list)
    requeued_batches: list[int] = field(default_factory=list)
    requeued_attempts: list[int] = field(default_factory=list)
    requeued_auto_retries: list[Any] = field(default_factory=list)
    started_scheduled: list[Any] = field(default_factory=list)
    held_scheduled: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "expired_batches": self.expired_batches,
            "reconciled": self.reconciled,
            "finalized_attempts": self.finalized_attempts,
            "requeued_batches": self.requeued_batches,
            "requeued_attempts": self.requeued_attempts,
            "requeued_auto_retries": self.requeued_auto_retries,
            "started_scheduled": self.started_scheduled,
            "held_scheduled": self.held_scheduled,
        }


def _expire_batch(state: AppState, batch_id: int, now: datetime) -> tuple[int, int] | None:
    """Turn one lease-expired batch UNCERTAIN; (attempt id, recipients made uncertain)."""
    session = state.db.session
    batches = state.models.batch.__table__
    recipients = state.models.recipient.__table__
    attempts = state.models.attempt.__table__
    b, r, a = batches.c, recipients.c, attempts.c
    row = session.execute(
        sa.update(batches)
        .where(b.id == batch_id, b.status == BatchStatus.SENDING, b.lease_until < now)
        .values(
            status=BatchStatus.UNCERTAIN,
            claim_token=None,
            lease_until=None,
            settled_at=now,
            error_kind=FailureKind.UNCERTAIN.value,
            error_message=LOST_IN_FLIGHT,
        )
        .returning(b.attempt_id)
    ).first()
    if row is None:
        session.rollback()
        return None
    attempt_id = int(row[0])
    moved = session.execute(
        sa.update(recipients)
        .where(r.batch_id == batch_id, r.status == RecipientStatus.SENDING)
        .values(
            status=RecipientStatus.UNCERTAIN,
            failure_kind=FailureKind.UNCERTAIN.value,
            error_code=None,
            error_message=LOST_IN_FLIGHT,
            submissions=r.submissions + 1,
        )
    ).rowcount
    session.execute(
        sa.update(batches).where(b.id == batch_id).values(uncertain=b.uncertain + moved)
    )
    session.execute(
        sa.update(attempts)
        .where(a.id == attempt_id)
        .values(batches_settled=a.batches_settled + 1, uncertain=a.uncertain + moved)
    )
    session.commit()
    return attempt_id, int(moved)


def expire_leases(state: AppState, now: datetime, report: RecoveryReport) -> set[int]:
    """Step 1: batches left SENDING past their lease; returns the attempts they belong to."""
    batches = state.models.batch.__table__
    expired = list(
        state.db.session.execute(
            sa.select(batches.c.id).where(
                batches.c.status == BatchStatus.SENDING, batches.c.lease_until < now
            )
        ).scalars()
    )
    state.db.session.rollback()
    attempts: set[int] = set()
    for batch_id in expired:
        done = _expire_batch(state, int(batch_id), now)
        if done is not None:
            attempts.add(done[0])
            report.expired_batches.append(int(batch_id))
    return attempts


def reconcile_settled_uncertain(state: AppState, now: datetime, report: RecoveryReport) -> None:
    """Step 2: UNCERTAIN recipients of settled batches (read timeouts, earlier sweeps) are
    looked up again until the event log can tell; finished campaigns get their status
    refreshed. Nothing is ever resent here."""
    r = state.models.recipient.__table__.c
    b = state.models.batch.__table__.c
    rows = state.db.session.execute(
        sa.select(r.batch_id, r.campaign_id)
        .join(state.models.batch.__table__, b.id == r.batch_id)
        .where(r.status == RecipientStatus.UNCERTAIN, b.status != BatchStatus.SENDING)
        .distinct()
        .limit(RECONCILE_BATCHES_PER_SWEEP)
    ).all()
    state.db.session.rollback()
    if not rows:
        return
    counts = reconcile_batches(state, [int(batch_id) for batch_id, _ in rows], now=now)
    for key, value in counts.items():
        report.reconciled[key] = report.reconciled.get(key, 0) + value
    for campaign_id in {campaign_id for _, campaign_id in rows}:
        refresh_campaign_status(state, campaign_id)


def finalize_settled(state: AppState, report: RecoveryReport) -> None:
    """Step 2: attempts whose every batch settled but that were never finalized."""
    attempts = state.models.attempt.__table__
    a = attempts.c
    open_ids = list(
        state.db.session.execute(
            sa.select(a.id).where(
                a.ended_at.is_(None),
                a.prepared.is_(True),
                a.batches_settled >= a.batches_total,
            )
        ).scalars()
    )
    state.db.session.rollback()
    for attempt_id in open_ids:
        if finalize_attempt(state, int(attempt_id)) is not None:
            report.finalized_attempts.append(int(attempt_id))


def start_overdue_scheduled(state: AppState, now: datetime, report: RecoveryReport) -> None:
    """Step 4: scheduled campaigns past their time: started within the grace, else held."""
    for campaign_id in overdue_campaigns(state, now):
        outcome = start_due(state, campaign_id, now)
        if outcome == "started":
            report.started_scheduled.append(campaign_id)
        elif outcome == "too late":
            report.held_scheduled.append(campaign_id)


def requeue_lost_work(state: AppState, app: Flask, now: datetime, report: RecoveryReport) -> None:
    """Step 5: re-enqueue work whose job went missing (Redis restarted, a job failed while the
    database was down, a crash between a commit and its enqueue).

    Every piece of work has a deterministic job id (:mod:`queue.job_ids`), so this asks Redis
    whether that job still waits or runs and enqueues only the missing ones: no need to wait
    for an idle queue, and sweeps running together queue each piece of work once.
    """
    backend = state.queue(app)
    queue_name = state.settings.queue_name
    settled = now - timedelta(seconds=REQUEUE_AFTER_SECONDS)
    session = state.db.session
    models = state.models
    b = models.batch.__table__.c
    a = models.attempt.__table__.c
    c = models.campaign.__table__.c
    stalled = session.execute(
        sa.select(b.id, b.tries)
        .join(models.attempt.__table__, a.id == b.attempt_id)
        .where(
            b.status == BatchStatus.QUEUED,
            a.ended_at.is_(None),
            a.halt_reason.is_(None),
            sa.or_(a.paused_until.is_(None), a.paused_until < settled),
            b.created_at < settled,
            sa.or_(b.next_try_at.is_(None), b.next_try_at < settled),
        )
        .order_by(b.id)
    ).all()
    unprepared = list(
        session.execute(
            sa.select(a.id).where(
                a.prepared.is_(False), a.ended_at.is_(None), a.started_at < settled
            )
        ).scalars()
    )
    missed = session.execute(
        sa.select(c.id, c.retry_count).where(
            c.status.in_([EmailStatus.FAILED, EmailStatus.PARTIALLY_SENT]),
            c.next_auto_retry_at.isnot(None),
            c.next_auto_retry_at < settled,
        )
    ).all()
    session.rollback()
    if stalled and backend.queue.count == 0:
        # Nothing waits at all: every stalled batch lost its job (fresh job ids, so an
        # abandoned job of the old id is left to RQ's own cleanup).
        backend.enqueue_many(BATCH_JOB, [int(i) for i, _ in stalled])
        report.requeued_batches.extend(int(i) for i, _ in stalled)
    elif stalled:
        ids = [batch_job_id(queue_name, int(i), int(tries)) for i, tries in stalled]
        live = backend.live(ids, now, started_grace=REQUEUE_AFTER_SECONDS)
        lost = [
            (int(i), job_id)
            for (i, _), job_id in zip(stalled, ids, strict=True)
            if job_id not in live
        ]
        if lost:
            backend.enqueue_many(BATCH_JOB, [i for i, _ in lost], [j for _, j in lost])
            report.requeued_batches.extend(i for i, _ in lost)
    for attempt_id in unprepared:
        job_id = prepare_job_id(queue_name, int(attempt_id))
        if backend.ensure(PREPARE_JOB, int(attempt_id), job_id=job_id, now=now):
            report.requeued_attempts.append(int(attempt_id))
    for campaign_id, retry_count in missed:
        job_id = auto_retry_job_id(queue_name, campaign_id, int(retry_count))
        if backend.ensure(AUTO_RETRY_JOB, campaign_id, job_id=job_id, now=now):
            report.requeued_auto_retries.append(campaign_id)


def recover(now: datetime | None = None) -> RecoveryReport:
    """Run one sweep for the current app and return what it did."""
    state = get_state()
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    now = now or utcnow()
    report = RecoveryReport()
    expire_leases(state, now, report)
    reconcile_settled_uncertain(state, now, report)
    finalize_settled(state, report)
    start_overdue_scheduled(state, now, report)
    requeue_lost_work(state, app, now, report)
    if any(report.as_dict().values()):
        log.warning(
            "recovery sweep: %s",
            report.as_dict(),
            extra={"campaign_retry": {"event": "recovery", **report.as_dict()}},
        )
    return report


def schedule_recovery(app: Flask) -> bool:
    """Keep one scheduled sweep chain per queue: the next sweep runs a third of a lease later.

    A Redis ``SET NX`` key guards the chain so many workers starting together schedule it once.
    """
    state = get_state(app)
    backend = state.queue(app)
    interval = max(10, state.settings.lease_seconds // 3)
    key = f"campaign_retry:{state.settings.queue_name}:recovery-scheduled"
    if not backend.connection.set(key, "1", nx=True, ex=interval):
        return False
    backend.enqueue(RECOVERY_JOB, at=utcnow() + timedelta(seconds=interval))
    return True


def run_scheduled_recovery() -> str:
    """The RQ job: sweep, then schedule the next sweep (also when this sweep failed, e.g. on
    a database outage: the chain must outlive it)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state = get_state(app)
    try:
        summary = f"recovered {len(recover().expired_batches)} expired batches"
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        # Not raised: RQ would run this link again and the chain would fork in two.
        log.warning("recovery sweep skipped: the database is unreachable (%s)", type(exc).__name__)
        summary = "skipped: the database is unreachable"
    state.db.session.rollback()
    state.queue(app).connection.delete(
        f"campaign_retry:{state.settings.queue_name}:recovery-scheduled"
    )
    schedule_recovery(app)
    return summary
