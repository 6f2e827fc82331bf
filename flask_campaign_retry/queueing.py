"""RQ integration: an app-bound job class, the app's queue, and enqueue helpers.

Jobs carry ids only. Each job runs inside the app context of the app whose queue created it
(the job class holds a weak reference to the app), so workers never look the app up through
``FLASK_APP`` and a forked work horse gets fresh database connections.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask
from redis import Redis
from rq import Queue, Retry
from rq.job import Job

from .clock import as_naive_utc

if TYPE_CHECKING:
    from .state import AppState

log = logging.getLogger("flask_campaign_retry")

#: RQ re-runs a job abandoned by a killed worker while it has retries left; every job is
#: idempotent, so a re-run changes nothing that is already settled.
ABANDONED_JOB_RETRIES = 3


class AppBoundJob(Job):
    """A Job that runs inside the app context of the app it is bound to."""

    _app_ref: weakref.ReferenceType[Flask] | None = None

    def perform(self) -> Any:
        app = self._app_ref() if self._app_ref is not None else None
        if app is None:
            raise RuntimeError(
                "This job class is not bound to a live Flask app: run workers with "
                "`flask campaign-retry worker` (or CampaignRetry.make_worker)."
            )
        with app.app_context():
            _dispose_inherited_pools(app)
            return super().perform()


def _dispose_inherited_pools(app: Flask) -> None:
    """In a forked work horse, drop the parent's pooled connections without closing them."""
    from .state import get_state

    state = get_state(app)
    pid = os.getpid()
    if state.pool_pid != pid:
        for engine in state.db.engines.values():
            engine.dispose(close=False)
        state.pool_pid = pid


def bound_job_class(app: Flask) -> type[AppBoundJob]:
    """A subclass of :class:`AppBoundJob` bound to ``app`` by weak reference."""
    return type("CampaignRetryJob", (AppBoundJob,), {"_app_ref": weakref.ref(app)})


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
            from .embedded import embedded_redis_url

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
