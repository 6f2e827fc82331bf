"""A worker's ``work()`` returns promptly even when its command listener reads the
unsubscribe reply before it is told to stop (the race behind minute-long stalls under load)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from redis.client import PubSubWorkerThread
from rq.command import send_command

from flask_campaign_retry.queue.listener import COMMAND_POLL_SECONDS
from flask_campaign_retry.queue.worker import make_worker
from tests.helpers import wait_for

#: How long the stop request lags the unsubscribe: long enough for the listener thread to
#: read the unsubscribe reply and go back to waiting, every time.
STOP_LAG_SECONDS = 0.3


@pytest.fixture
def late_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping the listener thread comes after it has read the unsubscribe reply."""
    original = PubSubWorkerThread.stop

    def stop_after_the_reply(thread: PubSubWorkerThread, *args: Any, **kwargs: Any) -> None:
        time.sleep(STOP_LAG_SECONDS)
        original(thread, *args, **kwargs)

    monkeypatch.setattr(PubSubWorkerThread, "stop", stop_after_the_reply)


@pytest.mark.parametrize("simple", [True, False], ids=["in-process", "forking"])
def test_work_returns_within_one_poll_when_the_listener_reads_the_unsubscribe_first(
    make_app: Any, late_stop: None, simple: bool
) -> None:
    app = make_app()
    with app.app_context():
        worker = make_worker(app, simple=simple)
        started = time.monotonic()
        worked = worker.work(burst=True, logging_level="WARNING")
        elapsed = time.monotonic() - started
    assert worked is False  # the queue was empty: only the start and the teardown ran
    # RQ's own listener waits 60 s here; ours at most one poll after the lagging stop.
    assert elapsed < STOP_LAG_SECONDS + COMMAND_POLL_SECONDS + 5
    assert not worker.pubsub_thread.is_alive()


def test_the_listener_still_receives_commands(make_app: Any) -> None:
    """The short poll changes when the thread looks at its stop flag, not what it hears:
    a command published on the worker's channel still reaches it."""
    app = make_app()
    with app.app_context():
        worker = make_worker(app, simple=True)
        received: list[Any] = []
        worker.handle_payload = received.append  # type: ignore[method-assign]
        worker.subscribe()
        try:
            send_command(worker.connection, worker.name, "kill-horse")
            wait_for(lambda: received, timeout=5, what="the command")
        finally:
            worker.unsubscribe()
    [message] = received
    assert json.loads(message["data"]) == {"command": "kill-horse"}
    assert not worker.pubsub_thread.is_alive()
