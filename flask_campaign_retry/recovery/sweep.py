"""The recovery sweep: nothing lost, nothing sent twice, no campaign SENDING forever.

Runs at worker start, on a schedule through RQ's scheduler, and by hand
(``flask campaign-retry recover``). Each step is a compare-and-set, so sweeps running
concurrently, or a sweep racing a slow but live worker, change each row once:

1. A batch SENDING past its lease lost its worker: the batch and its in-flight recipients (the
   PENDING rows its claim took, see ``engine.claims.IN_FLIGHT``) become UNCERTAIN (the provider
   may have accepted them).
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
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.claims import IN_FLIGHT
from flask_campaign_retry.engine.finalize import finalize_attempt, refresh_campaign_status
from flask_campaign_retry.engine.scheduling import overdue_campaigns, start_due
from flask_campaign_retry.queue.names import RECOVERY_JOB
from flask_campaign_retry.reconciliation.reconcile import reconcile_batches
from flask_campaign_retry.recovery.report import RecoveryReport
from flask_campaign_retry.recovery.requeue import requeue_lost_work
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import BatchStatus, FailureKind, RecipientStatus

log = logging.getLogger("flask_campaign_retry")

#: Batches looked up per sweep: bounds the time one sweep spends asking the provider.
RECONCILE_BATCHES_PER_SWEEP = 200
LOST_IN_FLIGHT = "the worker stopped while this batch was in flight; the provider may have it"


def _expire_batch(state: AppState, batch_id: int, now: datetime) -> bool:
    """Turn one lease-expired batch UNCERTAIN with its in-flight recipients; False when it was
    no longer SENDING past its lease (settled or expired meanwhile)."""
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
        .returning(b.attempt_id, b.campaign_id)
    ).first()
    if row is None:
        session.rollback()
        return False
    attempt_id = int(row[0])
    moved = session.execute(
        sa.update(recipients)
        .where(r.batch_id == batch_id, r.campaign_id == row[1], r.status.in_(IN_FLIGHT))
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
    return True


def expire_leases(state: AppState, now: datetime, report: RecoveryReport) -> None:
    """Step 1: batches left SENDING past their lease (their attempts are finalized by step 3
    once every batch settled)."""
    batches = state.models.batch.__table__
    expired = list(
        state.db.session.execute(
            sa.select(batches.c.id).where(
                batches.c.status == BatchStatus.SENDING, batches.c.lease_until < now
            )
        ).scalars()
    )
    state.db.session.rollback()
    for batch_id in expired:
        if _expire_batch(state, int(batch_id), now):
            report.expired_batches.append(int(batch_id))


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
