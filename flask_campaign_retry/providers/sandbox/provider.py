"""The sandbox provider: no network, failures scripted by rules, for demos and tests.

Every call builds the same form the Mailgun provider would send (so Mailgun's own limits, such
as at most 3 tags and unique addresses, apply here too) and consults the same
:class:`~flask_campaign_retry.providers.sandbox.rules.FaultRule` list the fake Mailgun server uses.
A firing rule is rendered into the status, body and headers Mailgun would answer and goes
through the Mailgun classifier, so the sandbox raises exactly the :class:`ProviderError` kind,
code and resume time the Mailgun provider would. A ``hang`` rule raises at once the UNCERTAIN
error of a read timeout instead of sleeping.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    RecipientLookup,
)
from flask_campaign_retry.providers.mailgun.errors import classify_response, read_timeout_error
from flask_campaign_retry.providers.mailgun.events import fold_events
from flask_campaign_retry.providers.mailgun.form import FormData, build_form, check_message
from flask_campaign_retry.providers.sandbox.records import (
    AcceptedRecipient,
    RecordedCall,
    SendRecords,
)
from flask_campaign_retry.providers.sandbox.rules import FaultPlan, FaultRule, render_fault

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "sandbox.campaign-retry.invalid"


def _rules_from_config(raw: Any) -> list[FaultRule]:
    if raw is None:
        return []
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
        raise ConfigurationError(
            "CAMPAIGN_RETRY_SANDBOX_RULES must be a list of rule dicts, e.g. "
            '[{"status": 429, "on_calls": [1], "resume_in": 30}].'
        )
    rules = []
    for index, item in enumerate(raw):
        try:
            rules.append(item if isinstance(item, FaultRule) else FaultRule.from_dict(item))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"CAMPAIGN_RETRY_SANDBOX_RULES[{index}]: {exc}") from None
    return rules


class SandboxProvider:
    """Accepts everything except what its rules say to fail; records what it accepted.

    Thread-safe: calls are numbered atomically (rules' ``on_calls`` count from 1) and records
    can be read while other threads send.
    """

    name = "sandbox"

    def __init__(
        self,
        rules: Iterable[FaultRule] = (),
        *,
        latency: float = 0.0,
        domain: str = DEFAULT_DOMAIN,
    ) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0 seconds.")
        self.latency = latency
        self.domain = domain
        self.faults = FaultPlan(rules)
        self.records = SendRecords()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SandboxProvider:
        """Build from ``CAMPAIGN_RETRY_SANDBOX_RULES`` (list of rule dicts, default none) and
        ``CAMPAIGN_RETRY_SANDBOX_LATENCY`` (seconds per call, default 0)."""
        latency = config.get("CAMPAIGN_RETRY_SANDBOX_LATENCY", 0.0) or 0.0
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
            raise ConfigurationError(
                f"CAMPAIGN_RETRY_SANDBOX_LATENCY must be a number of seconds >= 0, got {latency!r}."
            )
        rules = _rules_from_config(config.get("CAMPAIGN_RETRY_SANDBOX_RULES"))
        return cls(rules, latency=float(latency))

    def __repr__(self) -> str:
        return f"SandboxProvider(rules={len(self.faults.rules)}, latency={self.latency})"

    def add_rule(self, rule: FaultRule) -> None:
        """Script one more fault (consulted after the existing rules)."""
        self.faults.add(rule)

    def clear_rules(self) -> None:
        """Remove every scripted fault."""
        self.faults.clear()

    @property
    def accepted(self) -> tuple[AcceptedRecipient, ...]:
        """Every accepted recipient, one entry per acceptance."""
        return self.records.accepted

    @property
    def calls(self) -> tuple[RecordedCall, ...]:
        """Every call, with the status it was answered (or would have been) with."""
        return self.records.calls

    @property
    def call_count(self) -> int:
        """How many times ``send_batch`` got as far as "sending"."""
        return self.records.request_count

    def accepted_count(self, email: str) -> int:
        """How many times ``email`` was accepted (2 or more is a double send)."""
        return self.records.accepted_count(email)

    def accepted_emails(self) -> Counter[str]:
        """Acceptances per lower-cased address."""
        return self.records.accepted_emails()

    def validate(self, message: OutgoingMessage) -> None:
        """Refuse (``ValueError`` naming the field) a message Mailgun cannot carry."""
        check_message(message)

    def send_batch(
        self,
        message: OutgoingMessage,
        recipients: Sequence[BatchRecipient],
        ref: BatchRef,
    ) -> Accepted:
        """Accept the batch, or raise the ProviderError Mailgun's answer would have given."""
        call = _SandboxCall.of(build_form(message, recipients, ref), self.records)
        if self.latency:
            time.sleep(self.latency)
        rule = self.faults.pick(call.number, call.addresses)
        if rule is None or rule.accept_then_hang:
            message_id = f"{call.at:%Y%m%d%H%M%S}.{call.number}.{secrets.token_hex(6)}"
            message_id += f"@{self.domain}"
            self.records.add_accepted(
                message_id=message_id,
                addresses=call.addresses,
                recipient_variables=call.recipient_variables,
                user_variables=call.user_variables,
                call_number=call.number,
                at=call.at,
            )
            self.records.add_call(call.record(200, rule, message_id))
            if rule is None:
                return Accepted(message_id=message_id, http_status=200)
            raise read_timeout_error("sandbox: accepted, then no answer (accept_then_hang rule)")
        if rule.hang:
            self.records.add_call(call.record(rule.effective_status, rule))
            raise read_timeout_error(f"sandbox: hang rule of {rule.hang:g}s")
        answer = render_fault(rule, self.domain, call.at)
        self.records.add_call(call.record(answer.status, rule))
        error = classify_response(answer.status, answer.body, answer.headers, call.at)
        log.debug("sandbox call %d batch=%s failed: %s", call.number, ref.batch_id, error.message)
        raise error

    def lookup_batch(
        self,
        ref: BatchRef,
        recipients: Sequence[BatchRecipient],
        since: datetime,
    ) -> dict[int, RecipientLookup]:
        """What this sandbox accepted of one batch, as Mailgun's event log would tell it.

        The sandbox delivers nothing, so the answer is ACCEPTED (with the message id) or
        NOT_FOUND; acceptances before ``since`` are not looked at, as with Mailgun.
        """
        floor = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        events = (
            {
                "event": "accepted",
                "recipient": accepted.email,
                "timestamp": accepted.at.timestamp(),
                "user-variables": dict(accepted.user_variables),
                "message": {"headers": {"message-id": accepted.message_id}},
            }
            for accepted in self.records.accepted
            if accepted.at >= floor
        )
        return fold_events(events, ref, recipients)


@dataclass(frozen=True, slots=True)
class _SandboxCall:
    """One numbered call and the Mailgun form it would have sent."""

    number: int
    at: datetime
    form: Mapping[str, tuple[str, ...]]
    addresses: list[str]
    recipient_variables: dict[str, dict[str, Any]]
    user_variables: dict[str, str]

    @classmethod
    def of(cls, form: FormData, records: SendRecords) -> _SandboxCall:
        fields = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in form.items()}
        return cls(
            number=records.next_call_number(),
            at=datetime.now(UTC),
            form=fields,
            addresses=list(fields["to"]),
            recipient_variables=json.loads(fields["recipient-variables"][0]),
            user_variables={k[2:]: v[-1] for k, v in fields.items() if k.startswith("v:")},
        )

    def record(
        self, status: int, rule: FaultRule | None, message_id: str | None = None
    ) -> RecordedCall:
        return RecordedCall(
            number=self.number,
            status=status,
            recipients=tuple(self.addresses),
            form=self.form,
            user_variables=self.user_variables,
            recipient_variables=self.recipient_variables,
            message_id=message_id,
            fault=rule,
            at=self.at,
        )
