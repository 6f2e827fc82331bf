"""One initial send, four ways: the engine, the floor (no tracking), the provider calls alone
(no database), the naive tracker.

All three read the same list through the host's loader, post the same batches through the same
Mailgun provider instance to the same fake, and end with every recipient accepted.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from rq.job import Job

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.providers.base import BatchRecipient, BatchRef
from flask_campaign_retry.queue.worker import make_worker, run_burst
from flask_campaign_retry.sql import chunked
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import EmailStatus, RecipientStatus

from . import hostapp
from .context import BenchContext, expect
from .sqlcount import StatementCounter


@dataclass(frozen=True)
class SendRun:
    """An engine send: end to end, and split at the end of the preparation (snapshot) job."""

    recipients: int
    batches: int
    seconds: float
    prepare_seconds: float
    snapshot_statements: int
    #: statements of every job after the snapshot (batch jobs, the finalizer included)
    statements: Counter[str]

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds


def _check_sent(ctx: BenchContext, campaign_id: int, expected: int, accepted_before: int) -> None:
    hostapp.db.session.expire_all()
    campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
    expect(campaign is not None, f"campaign {campaign_id} vanished")
    assert campaign is not None
    expect(
        campaign.status == EmailStatus.SENT and campaign.successful_sends == expected,
        f"campaign {campaign_id} ended {campaign.status} with {campaign.successful_sends} of "
        f"{expected} sent: {campaign.failure_reason}",
    )
    accepted = ctx.fake.stats().accepted - accepted_before
    expect(accepted == expected, f"the fake accepted {accepted} recipients, expected {expected}")


@contextmanager
def keep_signal_handlers() -> Iterator[None]:
    """An in-process RQ worker installs its own SIGINT/SIGTERM handlers (they raise
    StopRequested later, anywhere in this process): put the previous ones back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def run_engine(ctx: BenchContext, app: Flask, list_name: str, expected: int) -> SendRun:
    """``retry.send`` then an in-process RQ worker (SimpleWorker) until the queue is empty."""
    with app.app_context():
        campaign = hostapp.new_campaign(list_name)
        before = ctx.fake.stats().accepted
        engine = hostapp.db.engine
        snapshot_counter = StatementCounter(engine)
        counter = StatementCounter(engine)
        started = time.perf_counter()
        hostapp.retry.send(campaign)
        with snapshot_counter.counting(), keep_signal_handlers():
            worker = make_worker(app, simple=True)
            worker.work(burst=True, max_jobs=1, logging_level="WARNING")  # the preparation job
        prepared = time.perf_counter()
        with counter.counting(), keep_signal_handlers():
            run_burst(app)
        ended = time.perf_counter()
        batches = get_state(app).models.batch.__table__
        count = hostapp.db.session.execute(
            sa.select(sa.func.count()).where(batches.c.campaign_id == campaign.id)
        ).scalar_one()
        _check_sent(ctx, campaign.id, expected, before)
    return SendRun(
        recipients=expected,
        batches=int(count),
        seconds=ended - started,
        prepare_seconds=prepared - started,
        snapshot_statements=snapshot_counter.total,
        statements=counter.kinds,
    )


def _bulk_snapshot(app: Flask, campaign: Any) -> list[list[BatchRecipient]]:
    """The floor's snapshot: the loader's rows bulk-inserted, ids returned, nothing else."""
    state = get_state(app)
    table = state.models.recipient.__table__
    insert = sa.insert(table).returning(
        table.c.id, table.c.email, table.c.variables, sort_by_parameter_order=True
    )
    session = hostapp.db.session
    campaign_id = campaign.id
    batches: list[list[BatchRecipient]] = []
    for chunk in chunked(hostapp.load_recipients(campaign), state.settings.batch_size):
        rows = session.execute(
            insert,
            [
                {
                    "campaign_id": campaign_id,
                    "email": item["email"],
                    "email_key": item["email"].casefold(),
                    "variables": item["variables"],
                    "status": RecipientStatus.PENDING,
                }
                for item in chunk
            ],
        ).all()
        batches.append(
            [BatchRecipient(int(rid), email, variables) for rid, email, variables in rows]
        )
    session.commit()
    return batches


def _post_batches(
    app: Flask,
    campaign: Any,
    after_each: Callable[[list[BatchRecipient], str | None], None] | None = None,
) -> Callable[[list[list[BatchRecipient]]], None]:
    state = get_state(app)
    provider = state.provider(app)
    message = hostapp.build_message(campaign)

    def post(batches: list[list[BatchRecipient]]) -> None:
        for seq, batch in enumerate(batches):
            accepted = provider.send_batch(message, batch, BatchRef(campaign.id, 0, seq))
            if after_each is not None:
                after_each(batch, accepted.message_id)

    return post


def run_floor(ctx: BenchContext, app: Flask, list_name: str, expected: int) -> float:
    """Bulk-insert the snapshot, post the same batches, track nothing: the seconds it took."""
    with app.app_context():
        campaign = hostapp.new_campaign(list_name)
        before = ctx.fake.stats().accepted
        post = _post_batches(app, campaign)
        started = time.perf_counter()
        post(_bulk_snapshot(app, campaign))
        elapsed = time.perf_counter() - started
        accepted = ctx.fake.stats().accepted - before
        expect(accepted == expected, f"floor: the fake accepted {accepted} of {expected}")
    return elapsed


def run_provider_only(ctx: BenchContext, app: Flask, list_name: str, expected: int) -> float:
    """The tighter floor: the same batches (read through the loader and built in memory before
    the clock starts, ids made up) posted by the same provider to the same fake; no database."""
    with app.app_context():
        campaign = hostapp.new_campaign(list_name)
        size = get_state(app).settings.batch_size
        ids = iter(range(1, expected + 1))
        batches = [
            [BatchRecipient(next(ids), item["email"], item["variables"]) for item in chunk]
            for chunk in chunked(hostapp.load_recipients(campaign), size)
        ]
        hostapp.db.session.commit()
        before = ctx.fake.stats().accepted
        post = _post_batches(app, campaign)
        started = time.perf_counter()
        post(batches)
        elapsed = time.perf_counter() - started
        accepted = ctx.fake.stats().accepted - before
        expect(accepted == expected, f"provider alone: the fake accepted {accepted} of {expected}")
    return elapsed


def run_naive(ctx: BenchContext, app: Flask, list_name: str, expected: int) -> float:
    """The same bulk snapshot, then one ORM UPDATE and one COMMIT per recipient."""
    with app.app_context():
        campaign = hostapp.new_campaign(list_name)
        before = ctx.fake.stats().accepted
        model = get_state(app).models.recipient
        session = hostapp.db.session

        def track(batch: list[BatchRecipient], message_id: str | None) -> None:
            for recipient in batch:
                session.execute(
                    sa.update(model)
                    .where(model.id == recipient.id)
                    .values(
                        status=RecipientStatus.SENT,
                        provider_message_id=message_id,
                        sent_at=utcnow(),
                        submissions=model.submissions + 1,
                    )
                )
                session.commit()

        post = _post_batches(app, campaign, track)
        started = time.perf_counter()
        post(_bulk_snapshot(app, campaign))
        elapsed = time.perf_counter() - started
        accepted = ctx.fake.stats().accepted - before
        sent = session.execute(
            sa.select(sa.func.count()).where(
                model.campaign_id == campaign.id, model.status == RecipientStatus.SENT
            )
        ).scalar_one()
        expect(accepted == expected and sent == expected, f"naive: {accepted}/{sent}/{expected}")
    return elapsed


def run_forked(
    ctx: BenchContext,
    app: Flask,
    list_name: str,
    expected: int,
    *,
    statement_key: str | None = None,
) -> float:
    """The same engine send with one real forking worker process (already idle) instead of the
    in-process worker: seconds from the attempt's start to its end (both stamped by the engine).
    """
    from .worker_proc import WorkerPool

    pool = WorkerPool(ctx.config_of(app), 1, statement_key=statement_key)
    with pool, app.app_context():
        campaign = hostapp.new_campaign(list_name)
        before = ctx.fake.stats().accepted
        attempt = hostapp.retry.send(campaign)
        elapsed = wait_attempt_end(app, attempt.id, timeout=600)
        _check_sent(ctx, campaign.id, expected, before)
    return elapsed


def _failed_jobs(app: Flask) -> str | None:
    """The last line of the first failed job's error on the app's queue, if a job failed."""
    queue = get_state(app).queue(app).queue
    registry = queue.failed_job_registry
    if registry.count == 0:
        return None
    ids = registry.get_job_ids()
    jobs = [job for job in Job.fetch_many(ids, connection=queue.connection) if job]
    errors = [(job.func_name, (job.exc_info or "").strip().splitlines()) for job in jobs]
    name, lines = errors[0] if errors else ("?", [])
    return f"{len(ids)} job(s) failed, first {name}: {lines[-1] if lines else '?'}"


def wait_attempt_end(app: Flask, attempt_id: int, *, timeout: float) -> float:
    """Wait until the attempt has ended; return ended_at - started_at in seconds. Fails at
    once when a job of the app's queue failed (the attempt would never end)."""
    model = get_state(app).models.attempt
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while True:
        hostapp.db.session.expire_all()
        row = hostapp.db.session.execute(
            sa.select(model.started_at, model.ended_at).where(model.id == attempt_id)
        ).one()
        hostapp.db.session.commit()
        if row.ended_at is not None:
            span: timedelta = row.ended_at - row.started_at
            return span.total_seconds()
        expect(time.monotonic() < deadline, f"attempt {attempt_id} did not end in {timeout} s")
        if time.monotonic() - checked > 1:
            failure = _failed_jobs(app)
            expect(failure is None, f"attempt {attempt_id}: {failure}")
            checked = time.monotonic()
        time.sleep(0.05)
