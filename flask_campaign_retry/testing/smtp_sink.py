"""An SMTP server on loopback for tests (aiosmtpd, the ``test`` extra): it records every
message it accepts so tests can count deliveries, and answers with scripted faults
(:class:`SMTPFault`)::

    with SMTPSink(credentials=("user", "secret")) as sink:
        sink.add_fault(SMTPFault("rcpt", code=550, match=r"^bounce"))
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=sink.port, ...)
        ...
        assert sink.count_for("ann@example.com") == 1
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from flask_campaign_retry.testing.smtp_faults import FaultScript, SMTPFault

HANG_SECONDS = 3600.0


@dataclass(frozen=True)
class SinkMessage:
    """One message the sink accepted: envelope and the raw bytes (``parsed`` for headers)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def parsed(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


class _Handler:
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink

    async def _fault(self, server: SMTP, fault: SMTPFault, address: str) -> str:
        if fault.hang:
            await asyncio.sleep(HANG_SECONDS)
        if fault.drop or fault.code == 421:
            reply = "" if fault.drop else fault.reply(address)
            transport = server.transport
            if reply and isinstance(transport, asyncio.WriteTransport):
                transport.write(f"{reply}\r\n".encode())
            if transport is not None:
                transport.close()
            return "421 closing" if not fault.drop else "421 dropped"
        return fault.reply(address)

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.sink.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]  # as real servers do

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        fault = self.sink.faults.pick("mail", [address])
        if fault is not None:
            return await self._fault(server, fault, address)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.sink.note_rcpt(address)
        fault = self.sink.faults.pick("rcpt", [address])
        if fault is not None:
            return await self._fault(server, fault, address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        fault = self.sink.faults.pick("data", envelope.rcpt_tos)
        if fault is None or fault.hang or fault.drop:
            self.sink.record(
                SinkMessage(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content)
            )
        if fault is not None:
            return await self._fault(server, fault, ",".join(envelope.rcpt_tos))
        return "250 2.0.0 OK queued"


class _CountingSMTP(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        handler = self.event_handler
        if isinstance(handler, _Handler):
            handler.sink.note_connection()
        super().connection_made(transport)


class _Controller(Controller):
    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH without TLS: on purpose, loopback only
            warnings.simplefilter("ignore")
            return _CountingSMTP(self.handler, **self.SMTP_kwargs)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SMTPSink:
    """A recording SMTP server on ``127.0.0.1:<port>`` in a background thread.

    It offers PIPELINING unless ``pipelining=False``; ``starttls=<server SSLContext>`` offers
    STARTTLS, ``implicit_tls=<server SSLContext>`` speaks TLS from the first byte (port 465
    style). ``credentials=(user, password)`` requires
    AUTH (PLAIN/LOGIN over plain text, loopback
    only): without it MAIL FROM answers 530, with a wrong password AUTH answers 535.
    """

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        faults: tuple[SMTPFault, ...] = (),
        port: int | None = None,
        pipelining: bool = True,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.pipelining = pipelining
        self._port = port
        self.faults = FaultScript(faults)
        self._lock = threading.Lock()
        self._messages: list[SinkMessage] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.connections = 0
        self._controller: _Controller | None = None

    # -- recording -------------------------------------------------------------------------

    def record(self, message: SinkMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def note_rcpt(self, address: str) -> None:
        with self._lock:
            self.rcpt_attempts[address] += 1

    def note_connection(self) -> None:
        with self._lock:
            self.connections += 1

    @property
    def messages(self) -> list[SinkMessage]:
        with self._lock:
            return list(self._messages)

    def count_for(self, address: str) -> int:
        """How many accepted messages were addressed (envelope) to ``address``."""
        return sum(message.rcpt_tos.count(address) for message in self.messages)

    def add_fault(self, fault: SMTPFault) -> None:
        self.faults.add(fault)

    def reset(self) -> None:
        """Forget messages, counters and faults."""
        with self._lock:
            self._messages.clear()
            self.rcpt_attempts.clear()
            self.connections = 0
        self.faults = FaultScript()

    # -- lifecycle -------------------------------------------------------------------------

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.credentials is not None
        if ok and (data.login.decode(), data.password.decode()) == self.credentials:
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> Self:
        if self._controller is not None:
            return self
        auth = self.credentials is not None
        controller = _Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self._port or _free_port(),
            authenticator=self._authenticate if auth else None,
            auth_required=auth,
            auth_require_tls=False,
            decode_data=False,
            tls_context=self.starttls,
            ssl_context=self.implicit_tls,
        )
        controller.start()
        self._controller = controller
        with self._lock:
            self.connections = 0  # the controller's own readiness probe
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("SMTPSink is not running: call start() or use `with`.")
        return int(self._controller.port)

    def config(self, **extra: Any) -> dict[str, Any]:
        """Flask-Mail settings pointing at this sink (plain SMTP, the sink's credentials)."""
        user, password = self.credentials or (None, None)
        return {
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": self.port,
            "MAIL_USE_TLS": False,
            "MAIL_USE_SSL": False,
            "MAIL_USERNAME": user,
            "MAIL_PASSWORD": password,
            **extra,
        }

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
