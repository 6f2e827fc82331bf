"""Submit one batch to the provider, isolating addresses the provider refuses.

One provider call per try of a group. A 400 that blames the recipients splits the group in halves
and resubmits each, until the refused addresses stand alone; everything else is settled by the
error's kind. Once a call reports a FATAL error nothing more is submitted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from flask_campaign_retry.clock import isoformat_utc
from flask_campaign_retry.engine.not_submitted import not_submitted
from flask_campaign_retry.providers.base import (
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    Provider,
    ProviderError,
)
from flask_campaign_retry.statuses import FailureKind

log = logging.getLogger("flask_campaign_retry")


@dataclass(frozen=True)
class GroupOutcome:
    """What happened to a group of recipients: accepted (``error`` is None) or an error."""

    recipients: Sequence[BatchRecipient]
    message_id: str | None = None
    error: ProviderError | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SubmissionResult:
    """Every group's outcome, plus the recipients never submitted (after a fatal error)."""

    outcomes: list[GroupOutcome]
    unsubmitted: list[BatchRecipient]
    calls: int

    @property
    def fatal(self) -> ProviderError | None:
        for outcome in self.outcomes:
            if outcome.error is not None and outcome.error.kind is FailureKind.FATAL:
                return outcome.error
        return None


def _call(
    provider: Provider,
    message: OutgoingMessage,
    group: Sequence[BatchRecipient],
    ref: BatchRef,
) -> GroupOutcome:
    started = time.perf_counter()
    try:
        accepted = provider.send_batch(message, group, ref)
    except ProviderError as refused:
        outcome = GroupOutcome(group, error=refused)
        status = refused.code
    except Exception as exc:  # noqa: BLE001 - raised before any request left: not submitted
        outcome = GroupOutcome(group, error=not_submitted(provider, exc))
        status = None
    else:
        outcome = GroupOutcome(group, message_id=accepted.message_id)
        status = accepted.http_status
    error = outcome.error
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info(
        "provider call campaign=%s attempt=%s batch=%s recipients=%d status=%s kind=%s "
        "duration_ms=%.1f",
        ref.campaign_id,
        ref.attempt_id,
        ref.batch_id,
        len(group),
        status,
        error.kind.value if error else "accepted",
        duration_ms,
        extra={
            "campaign_retry": {
                "event": "provider_call",
                "provider": provider.name,
                "campaign_id": ref.campaign_id,
                "attempt_id": ref.attempt_id,
                "batch_id": ref.batch_id,
                "recipients": len(group),
                "http_status": status,
                "duration_ms": duration_ms,
                "error_kind": error.kind.value if error else None,
                "error": error.message if error else None,
                "resume_at": isoformat_utc(error.resume_at) if error else None,
            }
        },
    )
    return outcome


def submit(
    provider: Provider,
    message: OutgoingMessage,
    recipients: Sequence[BatchRecipient],
    ref: BatchRef,
) -> SubmissionResult:
    """Submit ``recipients`` (already validated) and report each group's outcome."""
    pending: list[Sequence[BatchRecipient]] = [recipients] if recipients else []
    outcomes: list[GroupOutcome] = []
    calls = 0
    while pending:
        group = pending.pop()
        outcome = _call(provider, message, group, ref)
        calls += 1
        error = outcome.error
        if error is not None and error.blames_recipients and len(group) > 1:
            middle = len(group) // 2
            # Depth first, second half pushed first so groups go out in address order.
            pending.append(group[middle:])
            pending.append(group[:middle])
            continue
        outcomes.append(outcome)
        if error is not None and error.kind is FailureKind.FATAL:
            unsubmitted = [recipient for rest in pending for recipient in rest]
            return SubmissionResult(outcomes, unsubmitted, calls)
    return SubmissionResult(outcomes, [], calls)
