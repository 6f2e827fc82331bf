"""The app's Redis connection and RQ queue, and the enqueue helpers. Jobs carry ids only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from flask import Flask
from redis import Redis
from rq import Queue, Retry
from rq.job import Job

from flask_campaign_retry.clock import as_naive_utc
from flask_campaign_retry.queue.embedded import embedded_redis_url
from flask_campaign_retry.queue.job_class import AppBoundJob, bound_job_class

if TYPE_CHECKING:
    from flask_campaign_retry.state import AppState

log = logging.getLogger("flask_campaign_retry")

#: RQ re-runs a job abandoned by a killed worker while it has retries left; every job is
#: idempotent, so a re-run changes nothing that is already settled.
ABANDONED_JOB_RETRIES = 3


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

    def enqueue(self, func: str, *ids: int, at: datetime | None = None) -> Job:
        """Enqueue ``func(*ids)`` now, or at ``at`` (naive UTC) through RQ's scheduler."""
        retry = Retry(max=ABANDONED_JOB_RETRIES)
        if at is None:
            job: Job = self.queue.enqueue(func, *ids, retry=retry)
            return job
        # RQ reads a naive datetime as local time: hand it an aware UTC one. It also keeps
        # whole seconds only, so round up: a job must never run before its time.
        when = as_naive_utc(at).replace(tzinfo=UTC)
        if when.microsecond:
            when = when.replace(microsecond=0) + timedelta(seconds=1)
        job = self.queue.enqueue_at(when, func, *ids, retry=retry)
        return job

    def enqueue_many(self, func: str, ids: Sequence[int]) -> None:
        """Enqueue ``func(id)`` for every id, in pipelined chunks."""
        chunk = 500
        for start in range(0, len(ids), chunk):
            data = [
                Queue.prepare_data(func, args=(one,), retry=Retry(max=ABANDONED_JOB_RETRIES))
                for one in ids[start : start + chunk]
            ]
            self.queue.enqueue_many(data)
