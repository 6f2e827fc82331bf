"""App-bound RQ workers: the forking worker for production, the in-process one for tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from rq import SimpleWorker, Worker

from flask_campaign_retry.queue.listener import PromptSimpleWorker, PromptWorker
from flask_campaign_retry.state import get_state


def make_worker(
    app: Flask,
    *,
    simple: bool = False,
    name: str | None = None,
    outage_aware: Callable[[type], type] | None = None,
    **kwargs: Any,
) -> Worker | SimpleWorker:
    """A worker on the app's queue whose jobs run inside ``app``'s context.

    ``simple=True`` runs jobs in this process (no fork): for tests and the embedded queue.
    ``outage_aware`` wraps the worker class (see :mod:`queue.resilient`).
    """
    state = get_state(app)
    backend = state.queue(app)
    if not simple:
        _preload(app)
    worker_class: Any = PromptSimpleWorker if simple else PromptWorker
    if outage_aware is not None:
        worker_class = outage_aware(worker_class)
    return worker_class(  # type: ignore[no-any-return]
        [backend.queue],
        connection=backend.connection,
        job_class=backend.job_class,
        name=name,
        **kwargs,
    )


def _preload(app: Flask) -> None:
    """Do once, before the worker forks a work horse per job, what every horse would redo:
    build the provider and warm it (``warm()``: the Mailgun SDK client loads its CA bundle
    into a TLS context, about 70 ms, without connecting), the fallback provider too, and run
    the database dialect's first-connect initialisation. The pools are then emptied, so no
    horse inherits an open connection. The job modules are already loaded: every caller of
    :func:`make_worker` imports :mod:`flask_campaign_retry.jobs` at module level.
    """
    state = get_state(app)
    for provider in (state.provider(app), state.fallback_provider(app)):
        warm = getattr(provider, "warm", None)
        if callable(warm):
            warm()
    with app.app_context():
        for engine in state.db.engines.values():
            with engine.connect():
                pass
            engine.dispose()


def run_burst(app: Flask, *, with_scheduler: bool = False) -> bool:
    """Run every job on the app's queue in this process until the queue is empty."""
    worker = make_worker(app, simple=True)
    return bool(worker.work(burst=True, with_scheduler=with_scheduler, logging_level="WARNING"))
