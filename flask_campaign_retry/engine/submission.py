"""Submit one batch to the provider, isolating addresses the provider refuses.

One provider call per try of a group. A 400 that blames the recipients splits the group in halves
and resubmits each, until the refused addresses stand alone; everything else is settled by the
error's kind. A call answered recipient by recipient (:class:`RecipientResults`) is written as
it is, never split. Once a call reports a FATAL error nothing more is submitted.
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
    RecipientOutcome,
    RecipientResults,
)
from flask_campaign_retry.statuses import FailureKind

log = logging.getLogger("flask_campaign_retry")


@dataclass(frozen=True)
class GroupOutcome:
    """What happened to a group of recipients: accepted (``error`` is None) or an error."""

    recipients: Sequence[BatchRecipient]
    message_id: str | None = None
    error: ProviderError | None = None
    per_recipient: RecipientResults | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SubmissionResult:
    """Every group's outcome, plus the recipients never submitted (after a fatal error)."""

    outcomes: list[GroupOutcome]
    unsubmitted: list[BatchRecipient]
    calls: int
    halted_by: ProviderError | None = None  # a per-recipient call's FATAL ``rest``

    @property
    def fatal(self) -> ProviderError | None:
        if self.halted_by is not None:
            return self.halted_by
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
        if isinstance(accepted, RecipientResults):
            outcome = GroupOutcome(group, per_recipient=accepted)
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
        _kind_word(outcome),
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


def _kind_word(outcome: GroupOutcome) -> str:
    if outcome.error is not None:
        return outcome.error.kind.value
    return "per_recipient" if outcome.per_recipient is not None else "accepted"


_FAILURE_KINDS = {
    RecipientOutcome.REFUSED: FailureKind.PERMANENT,
    RecipientOutcome.DEFERRED: FailureKind.TRANSIENT,
    RecipientOutcome.UNKNOWN: FailureKind.UNCERTAIN,
}
UNREPORTED = "the provider did not report this recipient; it may have been sent"


def split_results(group: Sequence[BatchRecipient], results: RecipientResults) -> list[GroupOutcome]:
    """One call's per-recipient results as groups the outcome writer takes: accepted recipients
    grouped by message id, failed ones by (kind, code, text); recipients the results do not
    name share ``results.rest`` (UNCERTAIN when it is None). Unknown ids and repeats of an id
    already named are ignored: the first word on a recipient counts."""
    by_id = {recipient.id: recipient for recipient in group}
    accepted: dict[str | None, list[BatchRecipient]] = {}
    failed: dict[tuple[FailureKind, int | None, str], list[BatchRecipient]] = {}
    for result in results.results:
        recipient = by_id.pop(result.recipient_id, None)
        if recipient is None:
            continue
        if result.outcome is RecipientOutcome.ACCEPTED:
            accepted.setdefault(result.message_id, []).append(recipient)
        else:
            text = result.text or result.outcome.value
            key = (_FAILURE_KINDS[RecipientOutcome(result.outcome)], result.code, text)
            failed.setdefault(key, []).append(recipient)
    groups = [GroupOutcome(members, message_id=mid) for mid, members in accepted.items()]
    groups += [
        GroupOutcome(members, error=ProviderError(kind, text, code=code))
        for (kind, code, text), members in failed.items()
    ]
    if by_id:
        rest = results.rest or ProviderError(FailureKind.UNCERTAIN, UNREPORTED)
        groups.append(GroupOutcome(list(by_id.values()), error=rest))
    return groups


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
        if outcome.per_recipient is not None:
            outcomes.extend(split_results(group, outcome.per_recipient))
            rest = outcome.per_recipient.rest
            if rest is not None and rest.kind is FailureKind.FATAL:
                unsubmitted = [recipient for rest_group in pending for recipient in rest_group]
                return SubmissionResult(outcomes, unsubmitted, calls, halted_by=rest)
            continue
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
