"""A worker that rides out Redis and database outages: reconnect with backoff, log, resume.

RQ's worker quits on most Redis errors (only its idle wait retries), and its scheduler
process dies with the first one. ``flask campaign-retry worker`` runs it inside
:func:`run_resilient_worker` instead: when Redis or the database goes away, the worker quits
its loop, this waits for both to answer again (backoff 1 s doubling to 30 s, a log line per
try), runs the caller's ``on_connected`` (the recovery sweep: it requeues the work an empty
Redis lost) and starts a fresh worker with a fresh scheduler. No supervisor is needed.
Only SIGINT/SIGTERM (RQ's warm shutdown) or the end of a burst end it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import StopRequested

from flask_campaign_retry.queue.worker import make_worker
from flask_campaign_retry.state import get_state

log = logging.getLogger("flask_campaign_retry")

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
#: RQ's maintenance (registry cleanup, restarting a scheduler whose lock a killed worker held)
#: runs every 10 minutes and an idle worker blocks on Redis for its TTL less 15 s: a worker
#: killed with its scheduler would leave scheduled jobs (backoffs, the sweep chain) waiting
#: that long. These bring it down to about a minute.
WORKER_TTL_SECONDS = 60
MAINTENANCE_SECONDS = 30


class ServiceLost(Exception):
    """Raised out of a worker's heartbeat when Redis stops answering, so that RQ's loop
    quits (it retries only while idle, and its scheduler process is gone by then)."""


#: Errors that mean "a service is unreachable", not "the code is wrong".
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    RedisError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    ServiceLost,
)


class _RidesOutages:
    """Mixed into RQ's worker classes: a failed heartbeat ends the work loop."""

    lost_connection = False

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().heartbeat(*args, **kwargs)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self.lost_connection = True
            raise ServiceLost(f"Redis stopped answering ({type(exc).__name__})") from exc


def _unreachable(app: Flask) -> str | None:
    """What is unreachable now ("Redis ...", "the database ..."), or None."""
    state = get_state(app)
    try:
        state.queue(app).connection.ping()
    except RedisError as exc:
        return f"Redis ({type(exc).__name__})"
    try:
        with app.app_context():
            for engine in state.db.engines.values():
                with engine.connect() as connection:
                    connection.execute(sa.text("SELECT 1"))
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        return f"the database ({type(exc.orig).__name__ if exc.orig else type(exc).__name__})"
    return None


def wait_for_services(
    app: Flask, stop: threading.Event, sleep: Callable[[float], bool] | None = None
) -> bool:
    """Block until Redis and the database both answer; False if asked to stop meanwhile."""
    wait = sleep or stop.wait
    delay = FIRST_DELAY
    began: float | None = None
    while not stop.is_set():
        missing = _unreachable(app)
        if missing is None:
            if began is not None:
                log.warning(
                    "worker: Redis and the database answer again after %.0f s; resuming",
                    time.monotonic() - began,
                )
            return True
        if began is None:
            began = time.monotonic()
        log.warning("worker: %s is unreachable; trying again in %.0f s", missing, delay)
        if wait(delay):
            break
        delay = min(delay * 2, MAX_DELAY)
    return False


def _outage_aware(worker_class: type) -> type:
    return type(f"Resilient{worker_class.__name__}", (_RidesOutages, worker_class), {})


def run_resilient_worker(
    app: Flask,
    *,
    on_connected: Callable[[], None],
    burst: bool = False,
    simple: bool = False,
    name: str | None = None,
) -> None:
    """Work the app's queue until stopped (or, with ``burst``, until it is empty), through
    any number of Redis and database outages."""
    stop = threading.Event()
    generation = 0
    while True:
        previous = _stop_on_signals(stop)
        try:
            if not wait_for_services(app, stop):
                return
        finally:
            _restore(previous)
        generation += 1
        worker: Any = None
        try:
            on_connected()
            worker = make_worker(
                app,
                simple=simple,
                name=name if generation == 1 or name is None else f"{name}-{generation}",
                outage_aware=_outage_aware,
                worker_ttl=WORKER_TTL_SECONDS,
                maintenance_interval=MAINTENANCE_SECONDS,
            )
            worker.work(with_scheduler=True, burst=burst)
        except (StopRequested, KeyboardInterrupt):
            return
        except OUTAGE_ERRORS as exc:
            log.warning("worker: stopped by an outage (%s); reconnecting", type(exc).__name__)
            continue
        if worker is not None and (
            getattr(worker, "_stop_requested", False)
            or getattr(worker, "_shutdown_requested_date", None) is not None
        ):
            return  # SIGINT/SIGTERM: RQ's warm shutdown, busy or idle
        if worker is not None and worker.lost_connection:
            log.warning("worker: Redis stopped answering; reconnecting")
            continue
        if _unreachable(app) is not None:
            continue  # RQ quit on an error of its own during the outage
        if burst:
            return
        log.error("worker: RQ's work loop ended unexpectedly; starting a new worker")


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """While waiting between workers, SIGINT/SIGTERM end the wait (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
