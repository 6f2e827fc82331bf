"""The app-bound RQ job class: every job runs inside the app context of the app whose queue
created it (a weak reference, so workers never look the app up through ``FLASK_APP``), and a
forked work horse drops the connection pools it inherited.

A job that meets an unreachable database (PostgreSQL restarting, its connection terminated)
is not failed: it returns an RQ ``Retry`` and runs again after a backoff (1 s doubling to
30 s, for about eight minutes), so a database outage delays work instead of losing it. Every
job is idempotent, so running it again is safe.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any

import sqlalchemy as sa
from flask import Flask
from rq import Retry
from rq.job import Job

from flask_campaign_retry.state import get_state

log = logging.getLogger("flask_campaign_retry")

#: Runs again after a database error: 1, 2, 4, 8, 16, then every 30 s (about 8 minutes).
DB_RETRY_MAX = 20
DB_RETRY_CAP_SECONDS = 30


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
            try:
                return super().perform()
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                return self._retry_after_database_error(exc)

    def _retry_after_database_error(self, exc: Exception) -> Retry:
        tries = self.number_of_retries or 0
        if tries >= DB_RETRY_MAX:
            raise exc
        delay = min(2**tries, DB_RETRY_CAP_SECONDS)
        log.warning(
            "job %s: the database is unreachable (%s); running it again in %s s",
            self.id,
            type(getattr(exc, "orig", None) or exc).__name__,
            delay,
        )
        return Retry(max=DB_RETRY_MAX, interval=delay)


def _dispose_inherited_pools(app: Flask) -> None:
    """In a forked work horse, drop the parent's pooled connections without closing them."""
    state = get_state(app)
    pid = os.getpid()
    if state.pool_pid != pid:
        for engine in state.db.engines.values():
            engine.dispose(close=False)
        state.pool_pid = pid


def bound_job_class(app: Flask) -> type[AppBoundJob]:
    """A subclass of :class:`AppBoundJob` bound to ``app`` by weak reference."""
    return type("CampaignRetryJob", (AppBoundJob,), {"_app_ref": weakref.ref(app)})
