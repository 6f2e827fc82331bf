"""A threaded werkzeug server on a free ``127.0.0.1`` port in a daemon thread: the lifecycle
the fake servers of :mod:`flask_campaign_retry.testing` share (start, stop, ``with``, ``url``)."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

log = logging.getLogger(__name__)


class _QuietRequestHandler(WSGIRequestHandler):
    """Keeps the server's per-request lines out of test output (debug log instead)."""

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("loopback server: %r %s", self.requestline, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("loopback server %s: %s", type, message % args if args else message)


class LoopbackServer:
    """Base of a fake HTTP server; subclasses define :meth:`wsgi_app`."""

    def __init__(self, *, name: str) -> None:
        self._name = name
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on a free loopback port (idempotent)."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = make_server(
            "127.0.0.1", 0, self.wsgi_app, threaded=True, request_handler=_QuietRequestHandler
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self._name}-{server.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung requests are woken up and the port is closed."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321`` (no ``/v3``)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running: call start() or use `with`.")
        return f"http://127.0.0.1:{self._server.port}"
