"""The sweep's requeue step, exactly: which batches, preparations and automatic retries count
as lost (due for longer than ``REQUEUE_AFTER_SECONDS``, strictly, with no live job of their
deterministic id), which do not (a batch not QUEUED, of an ended, halted or paused attempt, or
waiting for its next try; a prepared or ended attempt; a campaign with no retry planned or one
that moved on), and the job each one is queued again under."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from rq.utils import utcformat

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.queue.backend import SCHEDULED_OVERDUE_SECONDS
from flask_campaign_retry.queue.job_ids import auto_retry_job_id, batch_job_id, prepare_job_id
from flask_campaign_retry.queue.names import AUTO_RETRY_JOB, BATCH_JOB, PREPARE_JOB
from flask_campaign_retry.recovery.requeue import REQUEUE_AFTER_SECONDS
from flask_campaign_retry.recovery.sweep import recover
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import BatchStatus, EmailStatus
from tests import hostapp
from tests.helpers import attempts, batches, campaign_with, emails, prepare_only

TICK = timedelta(microseconds=1)
SETTLE = timedelta(seconds=REQUEUE_AFTER_SECONDS)


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=2,
        CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS=0,
        CAMPAIGN_RETRY_AUTO_RETRY=False,
    )
    with app.app_context():
        yield app


def _set(model: Any, where: Any, **values: Any) -> None:
    hostapp.db.session.execute(sa.update(model.__table__).where(where).values(**values))
    hostapp.db.session.commit()


def _prepared(app: Flask, name: str, created: datetime, size: int = 4) -> list[int]:
    """A campaign of ``size`` recipients prepared into batches of 2 created at ``created``."""
    campaign = campaign_with(emails(size, prefix=name), list_name=name)
    ids = prepare_only(app, campaign)
    batch = get_state().models.batch
    _set(batch, batch.id.in_(ids), created_at=created)
    return ids


def _attempt_of(batch_id: int) -> Any:
    models = get_state().models
    return hostapp.db.session.get(models.batch, batch_id).attempt_id


def _waiting(app: Flask) -> list[str]:
    return list(get_state().queue(app).queue.get_job_ids())


def _waiting_args(app: Flask, func: str) -> list[Any]:
    jobs = get_state().queue(app).queue.get_jobs()
    return sorted(job.args[0] for job in jobs if job.func_name == func)


def test_the_lost_batches_of_an_idle_queue_are_exactly_the_queued_due_ones(app: Flask) -> None:
    """Everything stalled since t0; the sweep runs a minute later (settled = now - 10 s). A
    batch counts only while QUEUED, of an attempt neither ended nor halted, paused until
    strictly before the settled moment, due for its next try strictly before it."""
    t0 = utcnow() - timedelta(hours=1)
    now = t0 + timedelta(minutes=1)
    settled = now - SETTLE
    models = get_state().models
    b, a = models.batch, models.attempt
    plain = _prepared(app, "plain", t0)
    one_sending = _prepared(app, "sending", t0)
    _set(b, b.id == one_sending[0], status=BatchStatus.SENDING)
    ended = _prepared(app, "ended", t0)
    _set(a, a.id == _attempt_of(ended[0]), ended_at=t0)
    halted = _prepared(app, "halted", t0)
    _set(a, a.id == _attempt_of(halted[0]), halt_reason="quota")
    paused_now = _prepared(app, "pausednow", t0)
    _set(a, a.id == _attempt_of(paused_now[0]), paused_until=settled)
    paused_before = _prepared(app, "pausedbefore", t0)
    _set(a, a.id == _attempt_of(paused_before[0]), paused_until=settled - TICK)
    tries = _prepared(app, "tries", t0)
    _set(b, b.id == tries[0], next_try_at=settled)
    _set(b, b.id == tries[1], next_try_at=settled - TICK)
    backend = get_state().queue(app)
    backend.queue.empty()
    assert backend.queue.count == 0

    report = recover(now)

    expected = sorted([*plain, one_sending[1], *paused_before, tries[1]])
    assert report.requeued_batches == expected
    assert _waiting_args(app, BATCH_JOB) == expected
    # An idle queue lost every job: they are queued under fresh ids, the stale record of the
    # deterministic id (if any) is left to RQ's cleanup.
    queue_name = get_state().settings.queue_name
    assert not set(_waiting(app)) & {batch_job_id(queue_name, i, 0) for i in expected}
    assert report.requeued_attempts == []
    assert report.requeued_auto_retries == []


def test_a_batch_is_lost_only_once_strictly_longer_than_the_settle_time_ago(app: Flask) -> None:
    t0 = utcnow() - timedelta(hours=1)
    first, second = _prepared(app, "boundary", t0)
    batch = get_state().models.batch
    _set(batch, batch.id == second, created_at=t0 + TICK)
    get_state().queue(app).queue.empty()

    assert recover(t0 + SETTLE).requeued_batches == []
    assert recover(t0 + SETTLE + TICK).requeued_batches == [first]
    assert _waiting_args(app, BATCH_JOB) == [first]


def test_a_busy_queue_requeues_only_the_missing_or_dead_batch_jobs(app: Flask) -> None:
    """The queue still holds jobs, so each stalled batch's job is looked up by its id (which
    names the batch's claims so far): waiting or started within the settle time, it is live;
    gone, under an older claim's id, or started longer ago than the settle time, it is lost
    and queued under its current id. The sweep runs an hour ahead of the clock: every job is
    judged at the sweep's moment, the lookup and the enqueue alike."""
    t0 = utcnow() + timedelta(hours=1)
    now = t0 + timedelta(minutes=1)
    kept, retried, gone, started_old, started_recent = _prepared(app, "busy", t0, size=10)
    backend = get_state().queue(app)
    queue_name = get_state().settings.queue_name
    batch = get_state().models.batch
    _set(batch, batch.id == retried, tries=1)  # its waiting job is the first claim's
    backend.job_class.fetch(
        batch_job_id(queue_name, gone, 0), connection=backend.connection
    ).delete()
    for batch_id, began in ((started_old, now - SETTLE - TICK), (started_recent, now - SETTLE)):
        job_id = batch_job_id(queue_name, batch_id, 0)
        job = backend.job_class.fetch(job_id, connection=backend.connection)
        backend.queue.remove(job)
        job.set_status("started")
        backend.connection.hset(job.key, "started_at", utcformat(began))
        registry = backend.queue.started_job_registry.key
        backend.connection.zadd(registry, {f"{job_id}:run": 2**40})
    assert backend.queue.count == 2

    report = recover(now)

    assert report.requeued_batches == [retried, gone, started_old]
    waiting = _waiting(app)
    assert waiting[:2] == [batch_job_id(queue_name, kept, 0), batch_job_id(queue_name, retried, 0)]
    assert sorted(waiting[2:]) == sorted(
        [
            batch_job_id(queue_name, retried, 1),
            batch_job_id(queue_name, gone, 0),
            batch_job_id(queue_name, started_old, 0),
        ]
    )
    # The jobs now wait: a second sweep finds nothing lost.
    assert recover(now).requeued_batches == []


def test_a_lost_preparation_is_one_of_an_unprepared_live_attempt_started_long_enough_ago(
    app: Flask,
) -> None:
    t0 = utcnow() - timedelta(hours=1)
    models = get_state().models
    a = models.attempt
    prepared = _prepared(app, "prepared", t0)
    sent = {}
    for name in ("due", "recent", "ended", "waiting"):
        campaign = campaign_with(emails(2, prefix=name), list_name=name)
        hostapp.retry.send(campaign)
        [attempt] = attempts(campaign)
        sent[name] = attempt.id
    backend = get_state().queue(app)
    queue_name = get_state().settings.queue_name
    for job_id in _waiting(app):
        if job_id != prepare_job_id(queue_name, sent["waiting"]):
            backend.queue.remove(job_id)
    _set(a, a.id.in_(sent.values()), started_at=t0)
    _set(a, a.id == _attempt_of(prepared[0]), started_at=t0)
    _set(a, a.id == sent["recent"], started_at=t0 + TICK)
    _set(a, a.id == sent["ended"], ended_at=t0)
    # The prepared campaign's batches are not what this test is about.
    _set(models.batch, models.batch.id.in_(prepared), status=BatchStatus.DONE)

    report = recover(t0 + SETTLE + TICK)

    assert report.requeued_attempts == [sent["due"]]
    assert report.requeued_batches == []
    assert sorted(_waiting(app)) == sorted(
        [prepare_job_id(queue_name, sent["waiting"]), prepare_job_id(queue_name, sent["due"])]
    )
    assert recover(t0 + SETTLE + TICK).requeued_attempts == []


def test_a_missed_automatic_retry_is_one_still_planned_for_a_failed_or_partial_campaign(
    app: Flask,
) -> None:
    t0 = utcnow() - timedelta(hours=1)
    c = get_state().models.campaign
    planned = {
        "failed": (EmailStatus.FAILED, t0),
        "partial": (EmailStatus.PARTIALLY_SENT, t0),
        "sent": (EmailStatus.SENT, t0),
        "unplanned": (EmailStatus.FAILED, None),
        "recent": (EmailStatus.PARTIALLY_SENT, t0 + TICK),
    }
    ids = {}
    for name, (status, when) in planned.items():
        campaign = hostapp.new_campaign("nobody", name=name)
        _set(c, c.id == campaign.id, status=status, next_auto_retry_at=when, retry_count=2)
        ids[name] = campaign.id
    waiting_before = _waiting(app)

    report = recover(t0 + SETTLE + TICK)

    assert sorted(report.requeued_auto_retries) == sorted([ids["failed"], ids["partial"]])
    queue_name = get_state().settings.queue_name
    assert sorted(set(_waiting(app)) - set(waiting_before)) == sorted(
        [auto_retry_job_id(queue_name, ids[n], 2) for n in ("failed", "partial")]
    )
    assert _waiting_args(app, AUTO_RETRY_JOB) == sorted([ids["failed"], ids["partial"]])
    assert recover(t0 + SETTLE + TICK).requeued_auto_retries == []
    assert [b for name in ids for b in batches(hostapp.db.session.get(c, ids[name]))] == []


def test_scheduled_preparations_and_retries_are_judged_overdue_at_the_sweep_s_moment(
    app: Flask,
) -> None:
    """A preparation and an automatic retry scheduled for an hour from now, whose scheduler
    died: a sweep at that hour plus the overdue margin queues both again; one judged by the
    real clock would still see them waiting."""
    due = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    moment = due + timedelta(seconds=SCHEDULED_OVERDUE_SECONDS + 1)
    state = get_state()
    backend = state.queue(app)
    queue_name = state.settings.queue_name
    campaign = campaign_with(emails(2, prefix="prep"), list_name="prep")
    hostapp.retry.send(campaign)
    [attempt] = attempts(campaign)
    backend.queue.empty()
    backend.enqueue(PREPARE_JOB, attempt.id, at=due, job_id=prepare_job_id(queue_name, attempt.id))
    c = state.models.campaign
    failed = hostapp.new_campaign("nobody", name="auto")
    _set(c, c.id == failed.id, status=EmailStatus.FAILED, next_auto_retry_at=due, retry_count=1)
    retry_job = auto_retry_job_id(queue_name, failed.id, 1)
    backend.enqueue(AUTO_RETRY_JOB, failed.id, at=due, job_id=retry_job)
    assert backend.queue.count == 0

    assert recover(due).requeued_attempts == []  # on time: the scheduler's to move
    report = recover(moment)

    assert report.requeued_attempts == [attempt.id]
    assert report.requeued_auto_retries == [failed.id]
    assert sorted(_waiting(app)) == sorted([prepare_job_id(queue_name, attempt.id), retry_job])
