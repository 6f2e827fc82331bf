"""The worker's command listener, polled often enough that a worker stops promptly.

Every RQ worker listens on a Redis pub/sub channel for commands (``rq``'s stop-job and
shutdown) in a thread that waits up to ``sleep_time`` seconds per poll. RQ starts that thread
with 60 seconds, and its teardown unsubscribes before it stops the thread, then joins it with
no time limit. When the thread reads the unsubscribe reply first, it goes back to wait for a
subscription for the whole 60 seconds: the worker's ``work()`` does not return for a minute.
Under load that happens often: an in-process burst worker then holds up whoever drained the
queue, the embedded queue's worker (which leaves ``work()`` every idle second) stops running
jobs for a minute, and a production worker takes a minute longer to shut down.

Polling every :data:`COMMAND_POLL_SECONDS` bounds that wait; commands still arrive at once,
since a message wakes the thread whatever its poll time.
"""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker, Worker

#: Longest wait of the command listener's thread between two looks at its stop flag.
COMMAND_POLL_SECONDS = 0.5


class PromptCommandListener:
    """Mixin for an RQ worker class: the command listener polls every
    :data:`COMMAND_POLL_SECONDS` instead of every 60 seconds."""

    connection: Any
    pubsub: Any
    pubsub_thread: Any
    pubsub_channel_name: str

    def subscribe(self) -> None:
        """RQ's subscription, with a short poll (see the module docstring)."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})  # type: ignore[attr-defined]
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=COMMAND_POLL_SECONDS,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,  # type: ignore[attr-defined]
        )


class PromptWorker(PromptCommandListener, Worker):
    """RQ's forking worker with the prompt command listener."""


class PromptSimpleWorker(PromptCommandListener, SimpleWorker):
    """RQ's in-process worker with the prompt command listener."""
