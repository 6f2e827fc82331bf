"""The app's Redis connection and RQ queue, and the enqueue helpers. Jobs carry ids only."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask
from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.utils import utcparse

from flask_campaign_retry.clock import as_naive_utc
from flask_campaign_retry.queue.embedded import embedded_redis_url
from flask_campaign_retry.queue.job_class import AppBoundJob, bound_job_class

if TYPE_CHECKING:
    from flask_campaign_retry.state import AppState

log = logging.getLogger("flask_campaign_retry")

#: RQ re-runs a job abandoned by a killed worker while it has retries left; every job is
#: idempotent, so a re-run changes nothing that is already settled.
ABANDONED_JOB_RETRIES = 3
#: Job statuses of work that still waits or runs (a STARTED job whose worker stopped
#: heartbeating is not among them).
LIVE_STATUSES = frozenset({"queued", "scheduled", "started", "deferred"})
#: A scheduled job this late is taken as stranded (RQ's scheduler moves due jobs every
#: second; none runs, e.g. its lock is held by a killed worker) and queued again.
SCHEDULED_OVERDUE_SECONDS = 10


class QueueBackend:
    """The app's Redis connection and RQ queue."""

    def __init__(self, connection: Redis, queue: Queue, job_class: type[AppBoundJob]) -> None:
        self.connection = connection
        self.queue = queue
        self.job_class = job_class

    @classmethod
    def for_app(cls, app: Flask, state: AppState) -> QueueBackend:
        url = state.settings.redis_url
        if url is None:
            url = embedded_redis_url(app)
        connection = Redis.from_url(url)
        job_class = bound_job_class(app)
        queue = Queue(
            state.settings.queue_name,
            connection=connection,
            job_class=job_class,
            default_timeout=state.settings.job_timeout,
        )
        return cls(connection, queue, job_class)

    def enqueue(
        self, func: str, *ids: Any, at: datetime | None = None, job_id: str | None = None
    ) -> Job:
        """Enqueue ``func(*ids)`` now, or at ``at`` (naive UTC) through RQ's scheduler."""
        retry = Retry(max=ABANDONED_JOB_RETRIES)
        if at is None:
            job: Job = self.queue.enqueue(func, *ids, retry=retry, job_id=job_id)
            return job
        # RQ reads a naive datetime as local time: hand it an aware UTC one. It also keeps
        # whole seconds only, so round up: a job must never run before its time.
        when = as_naive_utc(at).replace(tzinfo=UTC)
        if when.microsecond:
            when = when.replace(microsecond=0) + timedelta(seconds=1)
        job = self.queue.enqueue_at(when, func, *ids, retry=retry, job_id=job_id)
        return job

    def enqueue_many(
        self,
        func: str,
        ids: Sequence[int],
        job_ids: Sequence[str] | None = None,
        *,
        now: datetime | None = None,
        started_grace: float | None = None,
    ) -> int:
        """Enqueue ``func(id)`` for every id, in pipelined chunks; with ``job_ids`` (one per
        id) only those whose job does not already wait or run, judged as :meth:`live` judges
        it at ``now`` with ``started_grace``. Returns how many were queued."""
        chunk = 500
        queued = 0
        for start in range(0, len(ids), chunk):
            part = list(ids[start : start + chunk])
            names: list[str | None] = [None] * len(part)
            if job_ids is not None:
                names = list(job_ids[start : start + chunk])
                known = self._statuses([name for name in names if name is not None])
                live = self._live(known, now, started_grace)
                keep = [i for i, name in enumerate(names) if name not in live]
                part, names = [part[i] for i in keep], [names[i] for i in keep]
                for name in names:
                    if name is not None and known.get(name) is not None:
                        self._forget(name)
            data = [
                Queue.prepare_data(
                    func, args=(one,), job_id=name, retry=Retry(max=ABANDONED_JOB_RETRIES)
                )
                for one, name in zip(part, names, strict=True)
            ]
            if data:
                self.queue.enqueue_many(data)
            queued += len(data)
        return queued

    def ensure(
        self,
        func: str,
        *ids: Any,
        job_id: str,
        at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Enqueue ``func(*ids)`` under ``job_id`` unless that job already waits or runs.

        Idempotent: the work is queued once however often this is called. A finished, failed
        or abandoned job of that id is replaced. Returns True when it was queued now.
        """
        known = self._statuses([job_id])
        if self._live(known, now):
            return False
        if known[job_id] is not None:
            self._forget(job_id)
        self.enqueue(func, *ids, at=at, job_id=job_id)
        return True

    def discard_waiting(self, job_id: str) -> bool:
        """Take the job ``job_id`` out of the queue and delete it, if it still waits there
        (a worker that already popped it keeps it). Returns True when it was discarded.

        A batch job that claimed another batch of its attempt (:mod:`engine.chain`) discards
        that batch's waiting job, so no work horse is forked for a job that would only find
        its batch claimed.
        """
        if not self.connection.lrem(self.queue.key, 0, job_id):
            return False
        self.connection.delete(self.job_class.key_for(job_id))
        return True

    def live(
        self,
        job_ids: Sequence[str],
        now: datetime | None = None,
        started_grace: float | None = None,
    ) -> set[str]:
        """The ids among ``job_ids`` whose job waits (queued, or scheduled and not overdue at
        ``now``, naive UTC, default the real time) or runs under a worker that is still
        heartbeating. With ``started_grace``, a job started longer ago than that counts as
        dead (the caller knows its work would have shown by then: a batch job claims its
        batch at once, so one still QUEUED under an old started job lost its worker)."""
        return self._live(self._statuses(job_ids), now, started_grace)

    def _statuses(self, job_ids: Sequence[str]) -> dict[str, str | None]:
        if not job_ids:
            return {}
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.job_class.key_for(job_id), "status")
            raw = pipe.execute()
        return {
            job_id: value.decode() if isinstance(value, bytes) else value
            for job_id, value in zip(job_ids, raw, strict=True)
        }

    def _live(
        self,
        statuses: dict[str, str | None],
        now: datetime | None = None,
        started_grace: float | None = None,
    ) -> set[str]:
        moment = time.time() if now is None else as_naive_utc(now).replace(tzinfo=UTC).timestamp()
        alive = {job_id for job_id, status in statuses.items() if status in LIVE_STATUSES}
        queued = {job_id for job_id, status in statuses.items() if status == "queued"}
        if queued:
            # A worker killed between popping a job and starting it leaves it "queued" but
            # in no queue: only jobs really in the queue's list wait.
            alive -= queued - set(self.queue.get_job_ids())
        started = [job_id for job_id, status in statuses.items() if status == "started"]
        if started:
            alive -= set(self.queue.started_job_registry.get_expired_job_ids(moment))
        if started and started_grace is not None:
            with self.connection.pipeline(transaction=False) as pipe:
                for job_id in started:
                    pipe.hget(self.job_class.key_for(job_id), "started_at")
                stamps = pipe.execute()
            for job_id, stamp in zip(started, stamps, strict=True):
                began = utcparse(stamp.decode()) if stamp else None
                if began is None or began.timestamp() < moment - started_grace:
                    alive.discard(job_id)
        overdue = [job_id for job_id, status in statuses.items() if status == "scheduled"]
        if overdue:
            # A scheduled job long past its time has no scheduler to move it (RQ's scheduler
            # died with its worker and its lock has not expired yet): it does not count.
            key = self.queue.scheduled_job_registry.key
            with self.connection.pipeline(transaction=False) as pipe:
                for job_id in overdue:
                    pipe.zscore(key, job_id)
                scores = pipe.execute()
            limit = moment - SCHEDULED_OVERDUE_SECONDS
            alive -= {
                job_id
                for job_id, score in zip(overdue, scores, strict=True)
                if score is None or score < limit
            }
        return alive

    def _forget(self, job_id: str) -> None:
        """Delete the stale job of this id (finished, failed, abandoned) before reusing it."""
        try:
            job = self.job_class.fetch(job_id, connection=self.connection)
        except NoSuchJobError:
            return
        try:
            job.delete(remove_from_queue=True)
        except ValueError:
            # RQ raises when the job's execution records are gone (an abandoned job whose
            # worker died, Redis restarted from an older snapshot): drop the hash itself.
            self.connection.delete(job.key)
