"""Scripted faults of the SMTP sink, in the style of the fake Mailgun's rules: *when* a rule
fires (stage, an address pattern, which occurrence, how many times) and *what* it does (a reply
code, dropping the connection, never answering)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

STAGES = ("mail", "rcpt", "data")


@dataclass(frozen=True)
class SMTPFault:
    """One scripted fault.

    - ``stage``: ``"mail"`` (MAIL FROM), ``"rcpt"`` (RCPT TO, per address) or ``"data"``
      (after the message body was received; the message is recorded first, as a real server
      would have queued it).
    - ``match``: a regex searched in the address (RCPT's recipient, MAIL FROM's sender, any
      recipient of the transaction at DATA); None matches everything. ``{address}`` in
      ``message`` is replaced by the address, as servers often quote it.
    - ``on_calls``: 1-based numbers of the commands of this stage the rule fires on (the 3rd
      MAIL FROM the sink receives is call 3); None: any.
    - ``times``: fire at most this many times; None: every time.
    - what: ``code`` (with ``message``) answers that reply instead of 250; ``drop`` closes the
      connection without a reply; ``hang`` never answers (the client times out).
    """

    stage: str
    code: int | None = None
    message: str | None = None
    match: str | None = None
    on_calls: frozenset[int] | None = None
    times: int | None = None
    drop: bool = False
    hang: bool = False

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"SMTPFault.stage must be one of {STAGES}, got {self.stage!r}.")
        if self.on_calls is not None and not isinstance(self.on_calls, frozenset):
            object.__setattr__(self, "on_calls", frozenset(self.on_calls))
        if self.code is not None and not 400 <= self.code <= 599:
            raise ValueError(f"SMTPFault.code must be an SMTP error 400-599, got {self.code}.")
        if [self.code is not None, self.drop, self.hang].count(True) != 1:
            raise ValueError("SMTPFault needs exactly one of code=, drop=True or hang=True.")
        if self.match is not None:
            re.compile(self.match)
        if self.times is not None and self.times < 1:
            raise ValueError("SMTPFault.times must be >= 1, or None for every time.")

    def reply(self, address: str) -> str:
        """The reply line for a command about ``address``."""
        code = self.code or 0
        if self.message is not None:
            text = self.message.replace("{address}", address)
        elif code == 421:
            text = "4.3.2 Service not available, closing transmission channel"
        elif code >= 500:
            text = "5.1.1 mailbox unavailable"
        else:
            text = "4.2.0 try again later"
        return f"{code} {text}"

    def applies(self, number: int, addresses: Iterable[str]) -> bool:
        if self.on_calls is not None and number not in self.on_calls:
            return False
        if self.match is None:
            return True
        pattern = re.compile(self.match)
        return any(pattern.search(address) for address in addresses)


class FaultScript:
    """The sink's rules; :meth:`pick` counts commands per stage and fires rules thread-safely."""

    def __init__(self, faults: Iterable[SMTPFault] = ()) -> None:
        self._lock = threading.Lock()
        self._faults = list(faults)
        self._fired: dict[int, int] = {}
        self._counts = dict.fromkeys(STAGES, 0)

    def add(self, fault: SMTPFault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._fired.clear()

    def pick(self, stage: str, addresses: Iterable[str]) -> SMTPFault | None:
        addresses = list(addresses)
        with self._lock:
            self._counts[stage] += 1
            number = self._counts[stage]
            for index, fault in enumerate(self._faults):
                if fault.stage != stage or not fault.applies(number, addresses):
                    continue
                fired = self._fired.get(index, 0)
                if fault.times is not None and fired >= fault.times:
                    continue
                self._fired[index] = fired + 1
                return fault
        return None
