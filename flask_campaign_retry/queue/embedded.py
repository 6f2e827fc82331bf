"""The embedded development queue: a real RQ worker and scheduler on an in-process fake Redis.

With no ``CAMPAIGN_RETRY_REDIS_URL``, the first enqueue starts, inside this process:
fakeredis's ``TcpFakeServer`` on a free loopback port, an RQ ``SimpleWorker`` thread and an RQ
scheduler thread against it. Jobs take exactly the code path they take in production (RQ
serialisation, retries, scheduled jobs); only the Redis server and the worker's process model
differ. Not for production: the queue lives and dies with the web process.

It also starts the recovery sweep's chain (as a worker does), so work another process left
behind (a CLI command interrupted, a web process restarted) is picked up. The warning that
this queue is for development is logged once per process, when the queue starts: never for
``flask --help`` or a command that queues nothing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask
from redis import Redis
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.queue.job_class import bound_job_class
from flask_campaign_retry.queue.listener import PromptSimpleWorker
from flask_campaign_retry.queue.names import RECOVERY_JOB
from flask_campaign_retry.state import get_state

log = logging.getLogger("flask_campaign_retry")

_lock = threading.Lock()
_warned = threading.Event()
EMBEDDED_WARNING = (
    "CAMPAIGN_RETRY_REDIS_URL is not set: flask-campaign-retry runs its embedded in-process "
    "queue, which is for development only (its jobs die with this process). Production needs "
    "a real Redis and `flask campaign-retry worker` processes."
)


class _ThreadWorker(PromptSimpleWorker):
    """A SimpleWorker that can run outside the main thread (no signal handlers, no SIGALRM)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        """Signals can only be handled in the main thread; the web server owns them."""

    def _set_ip_address(self, connection: Redis) -> None:
        """fakeredis answers CLIENT INFO in a shape redis-py cannot parse; the address of an
        in-process worker is no use anyway."""
        self.ip_address = "embedded"


class _ThreadScheduler(RQScheduler):
    """RQ's scheduler loop, run in a thread instead of a forked process."""

    def _install_signal_handlers(self) -> None:
        """Signals can only be handled in the main thread; the web server owns them."""


@dataclass
class EmbeddedQueue:
    """Handles of the embedded server and its threads (kept in the app's extension state)."""

    url: str
    server: Any
    scheduler: Any
    threads: tuple[threading.Thread, ...]
    stopping: threading.Event

    def stop(self, timeout: float = 5.0) -> None:
        """Let the worker finish its job and the scheduler its tick, then close the server."""
        self.stopping.set()
        self.scheduler._stop_requested = True
        for thread in self.threads:
            thread.join(timeout)
        self.server.shutdown()
        self.server.server_close()


#: The worker thread returns to check for a stop request after this many idle seconds.
IDLE_CHECK_SECONDS = 1


def _work_until_stopped(worker: _ThreadWorker, stopping: threading.Event) -> None:
    """RQ's work loop, left every idle second to see whether the queue is being stopped."""
    while not stopping.is_set():
        worker.work(max_idle_time=IDLE_CHECK_SECONDS, logging_level="WARNING")


def _start_server() -> tuple[Any, str]:
    try:
        from fakeredis import TcpFakeServer
    except ImportError as exc:
        raise ConfigurationError(
            "CAMPAIGN_RETRY_REDIS_URL is not set, and the embedded development queue needs "
            "fakeredis: pip install 'flask-campaign-retry[embedded]', or set "
            "CAMPAIGN_RETRY_REDIS_URL to a real Redis."
        ) from exc

    server = TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    # fakeredis makes its connection threads non-daemon, which would keep the web process
    # (or a CLI command that sent something) alive forever after it is asked to stop.
    server.daemon_threads = True
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="campaign-retry-redis", daemon=True)
    thread.start()
    return server, f"redis://127.0.0.1:{port}/0"


def embedded_redis_url(app: Flask) -> str:
    """Start (once per app) the embedded server, worker and scheduler; return the Redis URL."""
    state = get_state(app)
    with _lock:
        if state.embedded is not None:
            return state.embedded.url  # type: ignore[no-any-return]
        server, url = _start_server()
        connection = Redis.from_url(url)
        from rq import Queue

        queue = Queue(state.settings.queue_name, connection=connection)
        worker = _ThreadWorker(
            [queue], connection=connection, job_class=bound_job_class(app), name=None
        )
        scheduler = _ThreadScheduler([queue], connection=Redis.from_url(url))
        scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        stopping = threading.Event()
        threads = (
            threading.Thread(
                target=_work_until_stopped,
                args=(worker, stopping),
                name="campaign-retry-worker",
                daemon=True,
            ),
            threading.Thread(target=scheduler.work, name="campaign-retry-scheduler", daemon=True),
        )
        for thread in threads:
            thread.start()
        state.embedded = EmbeddedQueue(url, server, scheduler, threads, stopping)
        if not _warned.is_set():
            _warned.set()
            log.warning(EMBEDDED_WARNING)
        # A first recovery sweep now; it schedules the next ones (SET NX guarded chain).
        queue.enqueue(RECOVERY_JOB)
        return url


def embedded_idle(app: Flask) -> bool:
    """True when the app's embedded queue has nothing waiting, running or scheduled (the
    recovery sweep's own chain aside): a CLI command that ran work on it may stop it."""
    from rq import Queue

    state = get_state(app)
    embedded = state.embedded
    if embedded is None:
        return True
    queue = Queue(state.settings.queue_name, connection=Redis.from_url(embedded.url))
    if queue.count or queue.started_job_registry.count:
        return False
    for job in queue.scheduled_job_registry.get_job_ids():
        fetched = queue.fetch_job(job)
        if fetched is not None and fetched.func_name != RECOVERY_JOB:
            return False
    return True
