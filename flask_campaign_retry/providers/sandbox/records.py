"""Thread-safe records of what a fake provider was asked and what it accepted.

Shared by :class:`~flask_campaign_retry.testing.fake_mailgun.FakeMailgun` and the sandbox
provider so that tests and benchmarks can ask both the same questions: how many calls were
made, which recipients were accepted how many times (a double send shows as a count of 2), and
which ``v:`` variables each accepted recipient carried (what Mailgun's events would return).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_campaign_retry.providers.sandbox.rules import FaultRule

_PLACEHOLDER = re.compile(r"%recipient\.([A-Za-z0-9_.-]+)%")


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One request to the send endpoint, whatever its outcome.

    ``form`` holds every field as sent (repeated fields such as ``to`` and ``o:tag`` keep all
    values in order); ``user_variables`` are the raw ``v:`` fields (placeholders unexpanded);
    ``recipient_variables`` is the parsed ``recipient-variables`` JSON, ``None`` when absent or
    invalid. ``fault`` is the scripted rule that decided the answer, if one fired.
    """

    number: int
    status: int
    recipients: tuple[str, ...]
    form: Mapping[str, tuple[str, ...]]
    user_variables: Mapping[str, str]
    recipient_variables: Mapping[str, Mapping[str, Any]] | None
    message_id: str | None
    fault: FaultRule | None
    at: datetime


@dataclass(frozen=True, slots=True)
class AcceptedRecipient:
    """One recipient the provider accepted.

    ``user_variables`` are the ``v:`` fields with ``%recipient.<key>%`` filled from this
    recipient's variables, as Mailgun returns them in events (an unknown key is left as is, so
    a wrong placeholder is visible); ``message_id`` has no angle brackets, as in events.
    """

    email: str
    message_id: str
    user_variables: Mapping[str, str]
    recipient_variables: Mapping[str, Any]
    call_number: int
    at: datetime


def expand_user_variables(
    user_variables: Mapping[str, str], recipient_variables: Mapping[str, Any]
) -> dict[str, str]:
    """Fill ``%recipient.<key>%`` placeholders the way Mailgun does per recipient."""

    def fill(found: re.Match[str]) -> str:
        key = found.group(1)
        return str(recipient_variables[key]) if key in recipient_variables else found.group(0)

    return {
        name: _PLACEHOLDER.sub(fill, value) if "%recipient." in value else value
        for name, value in user_variables.items()
    }


@dataclass(frozen=True, slots=True)
class _AcceptedBatch:
    """One accepted call, kept compact; expanded into AcceptedRecipient rows when read."""

    message_id: str
    addresses: tuple[str, ...]
    recipient_variables: Mapping[str, Mapping[str, Any]]
    user_variables: Mapping[str, str]
    call_number: int
    at: datetime

    def expand(self) -> list[AcceptedRecipient]:
        rows = []
        for address in self.addresses:
            variables = self.recipient_variables.get(address, {})
            rows.append(
                AcceptedRecipient(
                    email=address,
                    message_id=self.message_id,
                    user_variables=expand_user_variables(self.user_variables, variables),
                    recipient_variables=variables,
                    call_number=self.call_number,
                    at=self.at,
                )
            )
        return rows


class SendRecords:
    """Calls and accepted recipients of one fake provider; every method is thread-safe.

    Addresses are counted case-insensitively (``accepted_count("A@x.org")`` equals
    ``accepted_count("a@x.org")``), as mailbox providers treat them. Accepted batches are stored
    as they came and expanded into per-recipient rows only when :attr:`accepted` is read, so
    recording a 1,000-recipient call costs a fake server almost nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._request_count = 0
        self._calls: list[RecordedCall] = []
        self._batches: list[_AcceptedBatch] = []
        self._expanded: list[AcceptedRecipient] = []
        self._expanded_batches = 0
        self._counts: Counter[str] = Counter()

    def next_call_number(self) -> int:
        """Count a new request and return its 1-based number."""
        with self._lock:
            self._request_count += 1
            return self._request_count

    def add_call(self, call: RecordedCall) -> None:
        """Record a finished (or decided) call."""
        with self._lock:
            self._calls.append(call)

    def add_accepted(
        self,
        *,
        message_id: str,
        addresses: Iterable[str],
        recipient_variables: Mapping[str, Mapping[str, Any]],
        user_variables: Mapping[str, str],
        call_number: int,
        at: datetime,
    ) -> None:
        """Record that every address of one call was accepted under ``message_id``.

        ``user_variables`` are the raw ``v:`` values (placeholders are filled per recipient
        from ``recipient_variables`` when read).
        """
        batch = _AcceptedBatch(
            message_id, tuple(addresses), recipient_variables, user_variables, call_number, at
        )
        lowered = [address.lower() for address in batch.addresses]
        with self._lock:
            self._batches.append(batch)
            self._counts.update(lowered)

    @property
    def request_count(self) -> int:
        """How many requests arrived, including refused and hung ones."""
        with self._lock:
            return self._request_count

    @property
    def calls(self) -> tuple[RecordedCall, ...]:
        """Every recorded call, in the order their answers were decided."""
        with self._lock:
            return tuple(self._calls)

    @property
    def accepted(self) -> tuple[AcceptedRecipient, ...]:
        """Every accepted recipient, one entry per acceptance, in acceptance order."""
        with self._lock:
            for batch in self._batches[self._expanded_batches :]:
                self._expanded.extend(batch.expand())
            self._expanded_batches = len(self._batches)
            return tuple(self._expanded)

    def accepted_count(self, email: str) -> int:
        """How many times ``email`` was accepted (2 or more means a double send)."""
        with self._lock:
            return self._counts[email.lower()]

    def accepted_emails(self) -> Counter[str]:
        """Acceptances per lower-cased address."""
        with self._lock:
            return Counter(self._counts)

    def reset(self) -> None:
        """Forget every call and acceptance and restart call numbering at 1."""
        with self._lock:
            self._request_count = 0
            self._calls.clear()
            self._batches.clear()
            self._expanded.clear()
            self._expanded_batches = 0
            self._counts.clear()
