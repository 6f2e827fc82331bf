"""The Events API of the fake Mailgun server: ``GET /v3/<domain>/events`` and its pages.

:class:`FakeEventLog` holds what the API returns: an ``accepted`` event for every recipient the
fake accepted (derived from its :class:`~.send_records.SendRecords`, so nothing can drift) plus
events a test injects (:meth:`~FakeEventLog.deliver`, :meth:`~FakeEventLog.fail`,
:meth:`~FakeEventLog.add`). :func:`events_answer` answers a query the
way Mailgun does: filters ``event`` (with ``A OR B``), ``recipient``, ``message-id``,
``severity``, ``user-variables`` (a JSON object every key of which must match), ``begin`` /
``end`` (epoch seconds or RFC 2822), ``ascending``, ``limit`` (at most 300), and a ``paging``
block whose ``next`` link carries the query and offset in a path token; following ``next``
ends with an empty page, as at Mailgun. :meth:`FakeEventLog.break_api` makes queries fail.

Like Mailgun's, the log can be late and forgetful (:meth:`FakeEventLog.set_visibility`): an
event shows in the API only ``lag`` seconds after its timestamp, and one older than
``retention`` seconds no longer shows. :meth:`FakeEventLog.all` still returns every event.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from flask_campaign_retry.providers.sandbox.records import AcceptedRecipient, SendRecords
from flask_campaign_retry.providers.sandbox.rules import (
    FaultResponse,
    canonical_message,
    json_response,
)
from flask_campaign_retry.testing.fake_mailgun_query import (
    BadQuery,
    EventsQuery,
    page_token,
    query_of_token,
)


def _accepted_event(accepted: AcceptedRecipient) -> dict[str, Any]:
    digest = hashlib.sha256(f"{accepted.message_id}|{accepted.email}".encode()).digest()
    return {
        "id": base64.urlsafe_b64encode(digest[:16]).decode().rstrip("="),
        "event": "accepted",
        "timestamp": accepted.at.timestamp(),
        "log-level": "info",
        "method": "HTTP",
        "recipient": accepted.email,
        "recipient-domain": accepted.email.rpartition("@")[2],
        "message": {"headers": {"message-id": accepted.message_id}},
        "user-variables": dict(accepted.user_variables),
        "flags": {"is-test-mode": False},
    }


class FakeEventLog:
    """Events of one fake Mailgun; every method is thread-safe."""

    def __init__(self, records: SendRecords) -> None:
        self._records = records
        self._lock = threading.Lock()
        self._injected: list[dict[str, Any]] = []
        self._failure: tuple[int, int | None] | None = None
        self._requests = 0
        self._lag = 0.0
        self._retention: float | None = None

    def add(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Inject one event (``id`` and ``timestamp`` are filled in when missing)."""
        item = dict(event)
        item.setdefault("id", secrets.token_urlsafe(16))
        item.setdefault("timestamp", time.time())
        with self._lock:
            self._injected.append(item)
        return item

    def last_accepted(self, email: str) -> AcceptedRecipient:
        """The latest acceptance of ``email``; ValueError if the fake never accepted it."""
        wanted = email.lower()
        for accepted in reversed(self._records.accepted):
            if accepted.email.lower() == wanted:
                return accepted
        raise ValueError(f"The fake never accepted {email!r}: there is nothing to deliver.")

    def outcome_event(self, email: str, event: str, **fields: Any) -> dict[str, Any]:
        """Inject an event about the latest acceptance of ``email`` (same variables and message
        id, a timestamp after the acceptance unless ``timestamp`` is given)."""
        accepted = self.last_accepted(email)
        base = _accepted_event(accepted)
        item: dict[str, Any] = {
            "event": event,
            "timestamp": max(time.time(), accepted.at.timestamp() + 0.001),
            "recipient": accepted.email,
            "recipient-domain": base["recipient-domain"],
            "message": base["message"],
            "user-variables": base["user-variables"],
        }
        item.update(fields)
        return self.add(item)

    def deliver(self, email: str, **fields: Any) -> dict[str, Any]:
        """Log a ``delivered`` event for the latest acceptance of ``email``; returns it
        (``fields`` override or add event fields, e.g. ``timestamp``)."""
        fields.setdefault(
            "delivery-status", {"code": 250, "message": "OK", "description": "", "attempt-no": 1}
        )
        return self.outcome_event(email, "delivered", **fields)

    def fail(
        self,
        email: str,
        *,
        severity: str = "permanent",
        reason: str = "bounce",
        code: int = 550,
        description: str = "5.1.1 The email account that you tried to reach does not exist.",
        **fields: Any,
    ) -> dict[str, Any]:
        """Log a ``failed`` event for the latest acceptance of ``email``; returns it."""
        fields.setdefault(
            "delivery-status", {"code": code, "message": description, "description": description}
        )
        return self.outcome_event(email, "failed", severity=severity, reason=reason, **fields)

    def all(self) -> list[dict[str, Any]]:
        """Every event, oldest first (ties in the order they were recorded)."""
        derived = [_accepted_event(accepted) for accepted in self._records.accepted]
        with self._lock:
            items = derived + [dict(item) for item in self._injected]
        return sorted(items, key=lambda item: float(item["timestamp"]))

    def set_visibility(self, *, lag: float = 0.0, retention: float | None = None) -> None:
        """Show each event in the API only ``lag`` seconds after its timestamp (Mailgun indexes
        events late), and no event older than ``retention`` seconds (None: keep them all).
        With no lag (the default) every event shows at once, even one stamped in the future."""
        if lag < 0 or (retention is not None and retention <= lag):
            raise ValueError("lag must be >= 0 and retention (when given) longer than lag.")
        with self._lock:
            self._lag, self._retention = float(lag), retention

    def visible(self, now: float | None = None) -> list[dict[str, Any]]:
        """The events the Events API shows at ``now`` (epoch seconds; default: the clock)."""
        moment = time.time() if now is None else now
        with self._lock:
            lag, retention = self._lag, self._retention
        return [
            item
            for item in self.all()
            if (lag == 0 or float(item["timestamp"]) + lag <= moment)
            and (retention is None or moment - float(item["timestamp"]) <= retention)
        ]

    def break_api(self, status: int = 500, times: int | None = None) -> None:
        """Make the next ``times`` queries (every one when None) answer ``status``."""
        if not 400 <= status <= 599:
            raise ValueError("The Events API can only be broken with a 4xx or 5xx status.")
        with self._lock:
            self._failure = (status, times)

    def heal_api(self) -> None:
        """Undo :meth:`break_api`."""
        with self._lock:
            self._failure = None

    @property
    def request_count(self) -> int:
        """Queries received (pages included)."""
        with self._lock:
            return self._requests

    def take_request(self) -> int | None:
        """Count a query; return the status it must fail with, if the API is broken."""
        with self._lock:
            self._requests += 1
            if self._failure is None:
                return None
            status, left = self._failure
            if left is not None:
                self._failure = (status, left - 1) if left > 1 else None
            return status

    def reset(self) -> None:
        """Forget injected events, failures, the request count and the visibility settings."""
        with self._lock:
            self._injected.clear()
            self._failure = None
            self._requests = 0
            self._lag, self._retention = 0.0, None


def events_answer(
    log: FakeEventLog,
    params: Mapping[str, str],
    token: str | None,
    *,
    base_url: str,
    domain: str,
) -> FaultResponse:
    """The answer to one authenticated Events API request (first page or a ``next`` page)."""
    broken = log.take_request()
    if broken is not None:
        return json_response(broken, canonical_message(broken, domain))
    try:
        query = query_of_token(token) if token else EventsQuery.parse(params)
    except BadQuery as exc:
        return json_response(400, str(exc))
    items = [item for item in log.visible() if query.matches(item)]
    if not query.ascending:
        items.reverse()
    page = items[query.offset : query.offset + query.limit]
    after = query.offset + len(page)
    last = max(0, (len(items) - 1) // query.limit * query.limit)

    def link(offset: int) -> str:
        return f"{base_url}/v3/{domain}/events/{page_token(query, offset)}"

    body = {
        "items": page,
        "paging": {
            "first": link(0),
            "last": link(last),
            "next": link(after),
            "previous": link(max(0, query.offset - query.limit)),
        },
    }
    return FaultResponse(200, json.dumps(body), "application/json", {})
