"""The app-bound RQ job class: every job runs inside the app context of the app whose queue
created it (a weak reference, so workers never look the app up through ``FLASK_APP``), and a
forked work horse drops the connection pools it inherited."""

from __future__ import annotations

import os
import weakref
from typing import Any

from flask import Flask
from rq.job import Job

from flask_campaign_retry.state import get_state


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
    state = get_state(app)
    pid = os.getpid()
    if state.pool_pid != pid:
        for engine in state.db.engines.values():
            engine.dispose(close=False)
        state.pool_pid = pid


def bound_job_class(app: Flask) -> type[AppBoundJob]:
    """A subclass of :class:`AppBoundJob` bound to ``app`` by weak reference."""
    return type("CampaignRetryJob", (AppBoundJob,), {"_app_ref": weakref.ref(app)})
