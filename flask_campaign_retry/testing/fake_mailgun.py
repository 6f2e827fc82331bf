"""A faithful fake of Mailgun's sending API on loopback, for tests and benchmarks.

``FakeMailgun`` runs a threaded werkzeug server on ``127.0.0.1`` (a free port) in a daemon
thread and answers ``POST /v3/<domain>/messages`` the way Mailgun does: HTTP Basic auth with
user ``api``, the documented 400/401/404 answers, the 1,000-recipient limit, and
``200 {"id": "<...>", "message": "Queued. Thank you."}``. Faults are scripted with
:class:`~flask_campaign_retry.providers.sandbox.rules.FaultRule`. Everything asked and accepted is
recorded (:class:`~flask_campaign_retry.providers.sandbox.records.SendRecords`) so a test can prove
that nobody got a mail twice.

Routes live in one werkzeug ``Map``; a new endpoint is one ``Rule`` plus one
``_handle_<endpoint>`` method. ``GET /v3/<domain>/events`` (and its ``next`` pages) is the
Events API of :mod:`.fake_mailgun_events`: an ``accepted`` event per accepted recipient, plus
what a test injects through :attr:`FakeMailgun.events` (``deliver``, ``fail``, ``add``), which
can also make the Events API fail (``break_api``).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from flask_campaign_retry.providers.sandbox.records import (
    AcceptedRecipient,
    RecordedCall,
    SendRecords,
)
from flask_campaign_retry.providers.sandbox.rules import (
    MSG_QUEUED,
    FaultPlan,
    FaultResponse,
    FaultRule,
    domain_not_found,
    json_response,
    render_fault,
    unauthorized_response,
)
from flask_campaign_retry.testing.fake_mailgun_events import FakeEventLog, events_answer
from flask_campaign_retry.testing.fake_mailgun_form import (
    parse_form,
    parse_recipient_variables,
    parse_recipients,
    refusal_for,
)
from flask_campaign_retry.testing.loopback_server import LoopbackServer

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 52_400_000  # Mailgun refuses larger messages with 413
_Handler = Callable[[Request, str], Response]


def _answer(fault: FaultResponse) -> Response:
    return Response(
        fault.body, status=fault.status, content_type=fault.content_type, headers=fault.headers
    )


class FakeMailgun(LoopbackServer):
    """A fake Mailgun sending API on ``127.0.0.1``; use as a context manager or start/stop.

    ``url`` is the base to use as ``MAILGUN_API_URL`` (the SDK accepts plain http only for
    127.0.0.1/localhost). ``latency`` (seconds) delays every answer, for scaling benchmarks.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        domain: str = "mg.example.test",
        latency: float = 0.0,
    ) -> None:
        # Modern-style key with no "key-" prefix, so the SDK's own log filter cannot hide a leak.
        self.api_key = api_key or "-".join(secrets.token_hex(n) for n in (16, 4, 4))
        self.domain = domain
        self.latency = latency
        self.records = SendRecords()
        self.faults = FaultPlan()
        self.events = FakeEventLog(self.records)
        super().__init__(name="fake-mailgun")
        self._timing_lock = threading.Lock()
        self._handling_seconds = 0.0
        self._routes = Map(
            [
                Rule("/v3/<domain>/messages", methods=["POST"], endpoint="messages"),
                Rule("/v3/<domain>/events", methods=["GET"], endpoint="events"),
                Rule("/v3/<domain>/events/<token>", methods=["GET"], endpoint="events"),
            ]
        )
        self._handlers: dict[str, _Handler] = {
            "messages": self._handle_messages,
            "events": self._handle_events,
        }

    # -- scripting and records ---------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> None:
        """Script a fault (rules are consulted in the order added)."""
        self.faults.add(rule)

    def clear_faults(self) -> None:
        """Remove every scripted fault."""
        self.faults.clear()

    @property
    def calls(self) -> tuple[RecordedCall, ...]:
        """Every request to the send endpoint, with status and parsed form."""
        return self.records.calls

    @property
    def accepted(self) -> tuple[AcceptedRecipient, ...]:
        """Every accepted recipient, one entry per acceptance."""
        return self.records.accepted

    def accepted_count(self, email: str) -> int:
        """How many times ``email`` was accepted."""
        return self.records.accepted_count(email)

    def accepted_emails(self) -> Counter[str]:
        """Acceptances per lower-cased address."""
        return self.records.accepted_emails()

    @property
    def request_count(self) -> int:
        """Requests that reached the send endpoint, hung and refused ones included."""
        return self.records.request_count

    @property
    def handling_seconds(self) -> float:
        """Total server-side time spent handling requests, sleeps (hang/latency) excluded."""
        with self._timing_lock:
            return self._handling_seconds

    def reset(self) -> None:
        """Forget records, faults, events and timing (the server keeps running)."""
        self.records.reset()
        self.faults.clear()
        self.events.reset()
        with self._timing_lock:
            self._handling_seconds = 0.0

    # -- HTTP --------------------------------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The WSGI application (also usable with werkzeug's test ``Client``)."""
        request = Request(environ)
        request.max_content_length = MAX_REQUEST_BYTES
        request.max_form_memory_size = MAX_REQUEST_BYTES
        try:
            endpoint, args = self._routes.bind_to_environ(environ).match()
            response = self._handlers[str(endpoint)](request, str(args["domain"]))
        except HTTPException as exc:
            response = _answer(json_response(exc.code or 500, exc.name))
        return response(environ, start_response)

    @staticmethod
    def _read_form(request: Request) -> MultiDict[str, str]:
        if request.mimetype != "application/x-www-form-urlencoded":
            return MultiDict(request.form)  # multipart (attachments): werkzeug's parser
        return parse_form(request.get_data(cache=False))

    def _sleep(self, seconds: float | None) -> None:
        if seconds:
            self._stopping.wait(seconds)

    def _handle_messages(self, request: Request, domain: str) -> Response:
        started = time.perf_counter()
        number = self.records.next_call_number()
        try:  # read the body first, whatever the answer
            form = self._read_form(request)
        except RequestEntityTooLarge:
            too_large = json_response(413, "Request Entity Too Large")
            response = self._finish(_Call(number, started), too_large)
            response.headers["Connection"] = "close"  # the unread body makes the socket unusable
            return response
        auth = request.authorization
        if (
            auth is None
            or auth.username != "api"
            or not hmac.compare_digest((auth.password or "").encode(), self.api_key.encode())
        ):
            return self._finish(_Call(number, started, form), unauthorized_response())
        if domain.lower() != self.domain.lower():
            return self._finish(
                _Call(number, started, form), json_response(404, domain_not_found(domain))
            )
        addresses, all_valid = parse_recipients(form.getlist("to"))
        variables = parse_recipient_variables(form.get("recipient-variables"))
        call = _Call(number, started, form, addresses, variables)
        rule = self.faults.pick(number, addresses)
        if rule is not None and not rule.accept_then_hang:
            call.rule = rule
            return self._finish(call, render_fault(rule, self.domain, datetime.now(UTC)))
        refusal = refusal_for(form, addresses, all_valid, variables)
        if refusal is not None:
            return self._finish(call, refusal)
        call.rule = rule
        return self._accept(call)

    def _handle_events(self, request: Request, domain: str) -> Response:
        if not self._authorized(request):
            return _answer(unauthorized_response())
        if domain.lower() != self.domain.lower():
            return _answer(json_response(404, domain_not_found(domain)))
        _, _, token = request.path.partition("/events/")
        answer = events_answer(
            self.events, request.args, token or None, base_url=self.url, domain=self.domain
        )
        self._sleep(self.latency)
        return _answer(answer)

    def _authorized(self, request: Request) -> bool:
        auth = request.authorization
        return (
            auth is not None
            and auth.username == "api"
            and hmac.compare_digest((auth.password or "").encode(), self.api_key.encode())
        )

    def _accept(self, call: _Call) -> Response:
        now = datetime.now(UTC)
        message_id = f"{now:%Y%m%d%H%M%S}.{call.number}.{secrets.token_hex(6)}@{self.domain}"
        self.records.add_accepted(
            message_id=message_id,
            addresses=call.addresses,
            recipient_variables=call.variables or {},
            user_variables={k[2:]: v for k, v in call.form.items() if k.startswith("v:")},
            call_number=call.number,
            at=now,
        )
        call.message_id = message_id
        return self._finish(call, json_response(200, MSG_QUEUED, id=f"<{message_id}>"))

    def _finish(self, call: _Call, answer: FaultResponse) -> Response:
        """Record the call, then sleep as scripted (hang, latency) and answer."""
        fields = {key: tuple(values) for key, values in call.form.lists()}
        self.records.add_call(
            RecordedCall(
                number=call.number,
                status=answer.status,
                recipients=tuple(call.addresses),
                form=fields,
                user_variables={k[2:]: v[-1] for k, v in fields.items() if k.startswith("v:")},
                recipient_variables=call.variables,
                message_id=call.message_id,
                fault=call.rule,
                at=datetime.now(UTC),
            )
        )
        with self._timing_lock:
            self._handling_seconds += time.perf_counter() - call.started
        self._sleep(call.rule.hang if call.rule is not None else None)
        self._sleep(self.latency)
        return _answer(answer)


@dataclass(slots=True)
class _Call:
    """What one request to the send endpoint carried, gathered while it is handled."""

    number: int
    started: float
    form: MultiDict[str, str] = field(default_factory=MultiDict)
    addresses: list[str] = field(default_factory=list)
    variables: dict[str, dict[str, Any]] | None = None
    rule: FaultRule | None = None
    message_id: str | None = None
