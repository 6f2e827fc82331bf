"""Write what an event lookup found to recipient rows, in bulk (see :mod:`.reconcile`).

One UPDATE per group of recipients with the same finding (outcome, message id, failure code
and text), each conditional on the row still being UNCERTAIN, so that a webhook which settled a
row first is never overwritten and the counts say what this call really changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from flask_campaign_retry.clock import as_naive_utc, utcnow
from flask_campaign_retry.providers.base import LookupOutcome, RecipientLookup
from flask_campaign_retry.reconciliation.evidence import (
    Evidence,
    RowState,
    count_deliveries,
    next_state,
)
from flask_campaign_retry.sql import chunked
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import FailureKind, RecipientStatus

ABSENT_MESSAGE: Final = (
    "Not accepted by the provider (confirmed by its event log); a retry will send it"
)
_CHUNK = 500

#: The keys of a reconciliation's counts (recipients unless said otherwise):
COUNT_KEYS: Final = (
    "batches",  # batches looked up
    "examined",  # UNCERTAIN recipients of the batches asked about
    "sent",  # -> SENT
    "delivered",  # -> DELIVERED
    "failed_permanent",  # -> FAILED permanent
    "retryable",  # -> FAILED transient (confirmed never accepted)
    "still_uncertain",  # nothing known yet (too recent, lookup failed, unsupported)
    "lookup_failed",  # batches whose lookup raised ProviderError
    "unsupported",  # batches skipped: the provider cannot look up events
)
ReconcileCounts = dict[str, int]
"""What a reconciliation did: every key of :data:`COUNT_KEYS`, zero when nothing."""


def empty_counts() -> ReconcileCounts:
    """Counts with every key at zero."""
    return dict.fromkeys(COUNT_KEYS, 0)


_Group = tuple[LookupOutcome, str | None, int | None, str | None]


def write_findings(
    state: AppState,
    campaign_id: Any,
    ids: list[int],
    found: Mapping[int, RecipientLookup],
    settled: bool,
    counts: ReconcileCounts,
) -> None:
    """Apply one batch's lookup to its UNCERTAIN rows ``ids`` and add to ``counts``.

    ``settled``: whether NOT_FOUND proves the mail was never accepted (see
    :mod:`.reconcile`); if not, those rows stay UNCERTAIN. Runs in the caller's transaction.
    """
    groups: dict[_Group, list[tuple[int, datetime | None]]] = defaultdict(list)
    absent: list[int] = []
    for rid in ids:
        lookup = found.get(rid) or RecipientLookup(LookupOutcome.NOT_FOUND)
        if lookup.outcome is LookupOutcome.NOT_FOUND:
            if settled:
                absent.append(rid)
            else:
                counts["still_uncertain"] += 1
            continue
        key = (lookup.outcome, lookup.message_id, lookup.code, lookup.detail)
        groups[key].append((rid, as_naive_utc(lookup.at) if lookup.at else None))
    delivered = 0
    for (outcome, message_id, code, detail), members in groups.items():
        times = [at for _, at in members if at is not None]
        evidence = Evidence(outcome, min(times) if times else utcnow(), code, detail or "")
        changed = _update(state, [rid for rid, _ in members], _values(evidence, message_id))
        if outcome is LookupOutcome.DELIVERED:
            delivered += changed
            counts["delivered"] += changed
        elif outcome is LookupOutcome.FAILED_PERMANENT:
            counts["failed_permanent"] += changed
        else:
            counts["sent"] += changed
    count_deliveries(state, campaign_id, delivered)
    if absent:
        counts["retryable"] += _update(
            state,
            absent,
            {
                "status": RecipientStatus.FAILED,
                "failure_kind": FailureKind.TRANSIENT.value,
                "error_code": None,
                "error_message": ABSENT_MESSAGE,
            },
        )


def _values(evidence: Evidence, message_id: str | None) -> dict[str, Any]:
    """The columns an UNCERTAIN row gets from ``evidence`` (the webhook's own rule)."""
    uncertain = RowState(RecipientStatus.UNCERTAIN, FailureKind.UNCERTAIN.value)
    target = next_state(uncertain, evidence)
    if target is None:  # cannot happen: any evidence outranks UNCERTAIN
        raise AssertionError(f"{evidence.kind} does not change an UNCERTAIN row")
    values: dict[str, Any] = {
        "status": target.status,
        "failure_kind": target.failure_kind,
        "error_code": target.error_code,
        "error_message": target.error_message,
        "delivered_at": target.delivered_at,
    }
    if message_id:
        values["provider_message_id"] = message_id[:255]
    if evidence.kind is LookupOutcome.ACCEPTED:
        values["sent_at"] = evidence.at
    return values


def _update(state: AppState, ids: list[int], values: dict[str, Any]) -> int:
    """Set ``values`` on those of ``ids`` still UNCERTAIN; return how many changed."""
    recipients = state.models.recipient.__table__
    changed = 0
    for chunk in chunked(ids, _CHUNK):
        result = state.db.session.execute(
            sa.update(recipients)
            .where(
                recipients.c.id.in_(chunk),
                recipients.c.status == RecipientStatus.UNCERTAIN,
            )
            .values(**values)
        )
        changed += int(result.rowcount)
    return changed
