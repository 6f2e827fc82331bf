"""Scripted provider faults shared by the fake Mailgun server and the sandbox provider.

A :class:`FaultRule` says *when* a call fails (call numbers, an address pattern, how many
times) and *how* (HTTP status and body, a rate-limit resume time, a hang before answering).
:class:`FaultPlan` holds the rules of one fake or sandbox and picks, thread-safely, the rule
that fires for a call. :func:`render_fault` turns a fired rule into the exact status, body and
headers Mailgun would send, so the fake server answers with it and the sandbox provider can feed
it through the same classifier the Mailgun provider uses: one description, identical behaviour.

The message texts below are Mailgun's own where its documentation gives them (see
``/work/shared/REFERENCE.md``); the others follow the same pattern and are marked as such.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

# Documented Mailgun messages (REFERENCE.md, "Mailgun sending API").
MSG_QUEUED = "Queued. Thank you."
MSG_FROM_MISSING = "'from' parameter is missing"
MSG_TO_MISSING = "'to' parameter is missing"
MSG_INVALID_TO = "'to' parameter is not a valid address. please check documentation"
MSG_TOO_MANY_RECIPIENTS = "Too many recipients, max is 1000"
MSG_BAD_RECIPIENT_VARIABLES = "'recipient-variables' parameter is not a valid JSON"
BODY_UNAUTHORIZED = "Forbidden"  # 401 answers with this plain-text body, not JSON
# Same pattern as the documented ones, exact wording not in REFERENCE.md.
MSG_SUBJECT_MISSING = "'subject' parameter is missing"
MSG_BODY_MISSING = "Need at least one of 'text' or 'html' parameters specified"

MAX_RECIPIENTS = 1000
RATE_LIMIT_STATUSES = frozenset({420, 429})


def domain_not_found(domain: str) -> str:
    """The 404 message Mailgun gives for a wrong domain (or the wrong region)."""
    return f"Domain not found: {domain}"


def rate_limited(domain: str, resume_at: datetime | None) -> str:
    """The 429/420 message, with Mailgun's "try again after <RFC 2822 date>" when known."""
    text = f"Domain {domain} is not allowed to send: request limit exceeded"
    if resume_at is not None:
        text += f", try again after {format_datetime(resume_at, usegmt=True)}"
    return text


def canonical_message(status: int, domain: str) -> str:
    """The message Mailgun sends with ``status`` when a rule gives none of its own.

    400 has several documented messages (see the ``MSG_*`` constants); a bare scripted 400 uses
    the neutral reason phrase so that it does not pretend to blame an address. Statuses without
    a documented body use their HTTP reason phrase.
    """
    if status in RATE_LIMIT_STATUSES:
        return rate_limited(domain, None)
    if status == HTTPStatus.FORBIDDEN:
        return f"Domain {domain} is not allowed to send large batches yet"
    if status == HTTPStatus.NOT_FOUND:
        return domain_not_found(domain)
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass(frozen=True)
class FaultResponse:
    """What a fired rule answers: status, body text, content type and extra headers."""

    status: int
    body: str
    content_type: str
    headers: Mapping[str, str]


def json_response(status: int, message: str, **extra: str) -> FaultResponse:
    """A Mailgun-shaped JSON answer ``{"message": ..., **extra}``."""
    body = json.dumps({**extra, "message": message})
    return FaultResponse(status, body, "application/json", {})


def unauthorized_response() -> FaultResponse:
    """Mailgun's answer to a wrong API key: 401 with the plain-text body ``Forbidden``."""
    return FaultResponse(HTTPStatus.UNAUTHORIZED, BODY_UNAUTHORIZED, "text/plain", {})


@dataclass(frozen=True)
class FaultRule:
    """One scripted fault. Fields left ``None`` do not constrain or do not apply.

    When it fires: on a call whose 1-based number is in ``on_calls`` (``None``: any call), if
    ``match`` (a regex, ``re.search``) finds any recipient address of the call (``None``: any
    call), at most ``times`` times (``None``: every time).

    What it does:

    - ``status`` / ``message``: answer that status with Mailgun's body for it (``message``
      replaces the canonical text). 401 always answers the plain ``Forbidden`` body.
    - ``resume_in``: for 429/420, seconds until the "try again after <date>" in the body.
    - ``retry_after``: add a ``Retry-After: <seconds>`` header.
    - ``reject_addresses``: answer 400 "'to' parameter is not a valid address..." (needs
      ``match``; the whole call fails, as at Mailgun).
    - ``hang``: wait that many seconds before answering, so a client with a shorter read
      timeout gives up; nothing is accepted, and a late answer uses ``status`` (default 504).
    - ``accept_then_hang``: accept the call (it is recorded as accepted) and *then* hang for
      ``hang`` seconds before the 200: the client times out although the mail went out, the
      situation that makes recipients UNCERTAIN.
    """

    status: int | None = None
    message: str | None = None
    match: str | None = None
    on_calls: frozenset[int] | None = None
    times: int | None = None
    resume_in: float | None = None
    retry_after: int | None = None
    hang: float | None = None
    accept_then_hang: bool = False
    reject_addresses: bool = False

    def __post_init__(self) -> None:
        if self.on_calls is not None and not isinstance(self.on_calls, frozenset):
            object.__setattr__(self, "on_calls", frozenset(self.on_calls))
        self._validate()

    def _validate(self) -> None:
        _check_type("status", self.status, int)
        _check_type("message", self.message, str)
        _check_type("match", self.match, str)
        _check_type("times", self.times, int)
        _check_type("resume_in", self.resume_in, (int, float))
        _check_type("retry_after", self.retry_after, int)
        _check_type("hang", self.hang, (int, float))
        if self.status is not None and not (300 <= self.status <= 599):
            raise ValueError(
                f"FaultRule.status must be an HTTP error status 300-599, got {self.status}."
            )
        if self.match is not None:
            try:
                re.compile(self.match)
            except re.error as exc:
                raise ValueError(f"FaultRule.match is not a valid regex: {exc}") from None
        if self.on_calls is not None and not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.on_calls
        ):
            raise ValueError(
                "FaultRule.on_calls must hold call numbers >= 1 (the first call is 1)."
            )
        if self.times is not None and self.times < 1:
            raise ValueError("FaultRule.times must be >= 1, or None for every matching call.")
        if self.resume_in is not None and (
            self.resume_in < 0 or self.status not in RATE_LIMIT_STATUSES
        ):
            raise ValueError("FaultRule.resume_in needs status 429 or 420 and seconds >= 0.")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("FaultRule.retry_after must be >= 0 seconds.")
        if self.hang is not None and self.hang <= 0:
            raise ValueError("FaultRule.hang must be > 0 seconds.")
        if self.accept_then_hang and (self.hang is None or self.status is not None):
            raise ValueError("FaultRule.accept_then_hang needs hang=<seconds> and no status.")
        if self.reject_addresses and (self.match is None or self.status not in (None, 400)):
            raise ValueError("FaultRule.reject_addresses needs match=<regex> (status is 400).")
        if not (self.status or self.hang or self.reject_addresses):
            raise ValueError("FaultRule does nothing: set status, hang or reject_addresses.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from a config-file dict (e.g. ``CAMPAIGN_RETRY_SANDBOX_RULES``).

        Unknown keys are an error (a typo would otherwise silently script nothing);
        ``on_calls`` may be a list.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"A fault rule must be a dict, got {type(data).__name__}.")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ValueError(
                f"Unknown fault rule key(s): {', '.join(unknown)}. Allowed: {', '.join(allowed)}."
            )
        values = dict(data)
        on_calls = values.get("on_calls")
        if on_calls is not None:
            if isinstance(on_calls, (str, bytes)) or not isinstance(on_calls, Iterable):
                raise ValueError("FaultRule.on_calls must be a list of call numbers.")
            values["on_calls"] = frozenset(on_calls)
        return cls(**values)

    @property
    def effective_status(self) -> int:
        """The status this rule answers with (200 for accept_then_hang)."""
        if self.accept_then_hang:
            return HTTPStatus.OK
        if self.reject_addresses:
            return HTTPStatus.BAD_REQUEST
        return self.status or HTTPStatus.GATEWAY_TIMEOUT

    def applies_to(self, call_number: int, addresses: Sequence[str]) -> bool:
        """True if this rule's call numbers and address pattern select this call."""
        if self.on_calls is not None and call_number not in self.on_calls:
            return False
        if self.match is None:
            return True
        pattern = re.compile(self.match)
        return any(pattern.search(address) for address in addresses)


def _check_type(name: str, value: object, expected: type | tuple[type, ...]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ValueError(f"FaultRule.{name} has the wrong type: {value!r}.")


def render_fault(rule: FaultRule, domain: str, now: datetime) -> FaultResponse:
    """The HTTP answer Mailgun would give for a fired ``rule`` (not for accept_then_hang)."""
    status = rule.effective_status
    if status == HTTPStatus.UNAUTHORIZED:
        response = unauthorized_response()
    elif rule.reject_addresses:
        response = json_response(status, rule.message or MSG_INVALID_TO)
    elif rule.message is not None:
        response = json_response(status, rule.message)
    elif rule.resume_in is not None:
        resume_at = now + timedelta(seconds=rule.resume_in)
        response = json_response(status, rate_limited(domain, resume_at))
    else:
        response = json_response(status, canonical_message(status, domain))
    if rule.retry_after is not None:
        response = FaultResponse(
            response.status,
            response.body,
            response.content_type,
            {**response.headers, "Retry-After": str(rule.retry_after)},
        )
    return response


class FaultPlan:
    """The ordered, thread-safe rule list of one fake server or sandbox provider.

    For each call the first rule that applies and has firings left fires; at most one rule
    fires per call.
    """

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._fired: list[int] = []
        for rule in rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> None:
        """Append a rule (it is consulted after the rules added before it)."""
        if not isinstance(rule, FaultRule):
            raise TypeError(f"Expected a FaultRule, got {type(rule).__name__}.")
        with self._lock:
            self._rules.append(rule)
            self._fired.append(0)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()
            self._fired.clear()

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The current rules, in the order they are consulted."""
        with self._lock:
            return tuple(self._rules)

    def pick(self, call_number: int, addresses: Sequence[str]) -> FaultRule | None:
        """Return the rule that fires for this call (and count the firing), or ``None``."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.times is not None and self._fired[index] >= rule.times:
                    continue
                if rule.applies_to(call_number, addresses):
                    self._fired[index] += 1
                    return rule
        return None
