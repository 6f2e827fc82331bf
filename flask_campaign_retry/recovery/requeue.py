"""Step 5 of the recovery sweep: enqueue again the work whose RQ job is missing from Redis."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.campaign_fields import columns
from flask_campaign_retry.queue.job_ids import auto_retry_job_id, batch_job_id, prepare_job_id
from flask_campaign_retry.queue.names import AUTO_RETRY_JOB, BATCH_JOB, PREPARE_JOB
from flask_campaign_retry.recovery.report import RecoveryReport
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import BatchStatus, EmailStatus

#: Work is requeued only once it has been due this long without a live job: whoever
#: committed it has had time to enqueue it (a duplicate would be harmless anyway).
REQUEUE_AFTER_SECONDS = 10


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
    c = columns(models.campaign.__table__)
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
            # Judged as ``live`` judged them: a job started too long ago is replaced, not
            # counted live again by its worker's registry entry, which outlives the worker.
            backend.enqueue_many(
                BATCH_JOB,
                [i for i, _ in lost],
                [j for _, j in lost],
                now=now,
                started_grace=REQUEUE_AFTER_SECONDS,
            )
            report.requeued_batches.extend(i for i, _ in lost)
    for attempt_id in unprepared:
        job_id = prepare_job_id(queue_name, int(attempt_id))
        if backend.ensure(PREPARE_JOB, int(attempt_id), job_id=job_id, now=now):
            report.requeued_attempts.append(int(attempt_id))
    for campaign_id, retry_count in missed:
        job_id = auto_retry_job_id(queue_name, campaign_id, int(retry_count))
        if backend.ensure(AUTO_RETRY_JOB, campaign_id, job_id=job_id, now=now):
            report.requeued_auto_retries.append(campaign_id)
