"""Apply what a provider says happened to a mail (accepted, delayed, failed, delivered) to one
recipient row, idempotently and whatever order the news arrives in.

The rule is a ranking, so the final row depends only on *which* events arrived, never on their
order or on duplicates (the webhook gets both from Mailgun):

====  ============================================  =========================================
rank  row                                           event that puts it there
====  ============================================  =========================================
4     DELIVERED (``delivered_at`` = earliest)       delivered
3     FAILED permanent, "Not delivered by ..."      failed permanent, or temporary "old"
2     SENT with "Delivery delayed ..."              failed temporary (the provider retries)
1     SENT                                          accepted
0     anything else
====  ============================================  =========================================

An event changes a row only if its rank is higher than the row's; at equal rank the earlier
delivery, or the smaller (code, message) of a failure, is kept. Acceptance and delay are only
evidence that the provider has the mail, so they upgrade UNCERTAIN and FAILED rows (which stops
a retry from sending it twice) but leave PENDING, SENDING and SKIPPED rows to the send engine;
a delivery or a final failure is the last word and applies to any row below it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import sqlalchemy as sa

from flask_campaign_retry.campaign_fields import column_values, columns
from flask_campaign_retry.providers.base import LookupOutcome
from flask_campaign_retry.providers.mailgun.events import STRENGTH
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import FailureKind, RecipientStatus

log = logging.getLogger("flask_campaign_retry")

NOT_DELIVERED: Final = "Not delivered by the provider"
DELAYED: Final = "Delivery delayed, the provider is retrying"
#: Rows that evidence of acceptance upgrades to SENT (the others belong to the send engine).
UPGRADABLE: Final = frozenset({RecipientStatus.UNCERTAIN, RecipientStatus.FAILED})
_MAX_MESSAGE = 500
_CAS_TRIES = 5


@dataclass(frozen=True)
class Evidence:
    """What the provider said: ``kind`` (not NOT_FOUND), when (naive UTC), and for failures a
    code and a short text such as ``"bounce: 5.1.1 mailbox does not exist"``."""

    kind: LookupOutcome
    at: datetime
    code: int | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind is LookupOutcome.NOT_FOUND:
            raise ValueError("NOT_FOUND is the absence of evidence, not evidence.")


@dataclass(frozen=True)
class RowState:
    """The columns of a recipient row that events read and write."""

    status: RecipientStatus
    failure_kind: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    delivered_at: datetime | None = None


def row_rank(row: RowState) -> int:
    """Where ``row`` stands in the ranking of the module docstring."""
    message = row.error_message or ""
    if row.status is RecipientStatus.DELIVERED:
        return 4
    if (
        row.status is RecipientStatus.FAILED
        and row.failure_kind == FailureKind.PERMANENT.value
        and message.startswith(NOT_DELIVERED)
    ):
        return 3
    if row.status is RecipientStatus.SENT:
        return 2 if message.startswith(DELAYED) else 1
    return 0


def _message(prefix: str, evidence: Evidence) -> str:
    text = f"{prefix} ({evidence.detail})" if evidence.detail else prefix
    return text[:_MAX_MESSAGE]


def _target(row: RowState, evidence: Evidence) -> RowState:
    """The row after ``evidence`` wins (its content depends only on the evidence)."""
    kind = evidence.kind
    if kind is LookupOutcome.DELIVERED:
        return RowState(RecipientStatus.DELIVERED, delivered_at=evidence.at)
    if kind is LookupOutcome.FAILED_PERMANENT:
        return replace(
            row,
            status=RecipientStatus.FAILED,
            failure_kind=FailureKind.PERMANENT.value,
            error_code=evidence.code,
            error_message=_message(NOT_DELIVERED, evidence),
        )
    if kind is LookupOutcome.FAILED_TEMPORARY:
        return replace(
            row,
            status=RecipientStatus.SENT,
            failure_kind=None,
            error_code=evidence.code,
            error_message=_message(DELAYED, evidence),
        )
    return replace(
        row, status=RecipientStatus.SENT, failure_kind=None, error_code=None, error_message=None
    )


def _failure_key(row: RowState) -> tuple[int, str]:
    return (-1 if row.error_code is None else row.error_code, row.error_message or "")


def next_state(row: RowState, evidence: Evidence) -> RowState | None:
    """The row after ``evidence``, or None when the evidence changes nothing."""
    new, old = STRENGTH[evidence.kind], row_rank(row)
    if new < old:
        return None
    if new == old:
        if evidence.kind is LookupOutcome.DELIVERED:
            earlier = row.delivered_at is None or evidence.at < row.delivered_at
            return replace(row, delivered_at=evidence.at) if earlier else None
        if evidence.kind is LookupOutcome.ACCEPTED:
            return None
        target = _target(row, evidence)
        return target if _failure_key(target) < _failure_key(row) else None
    if old == 0 and new <= 2 and row.status not in UPGRADABLE:
        return None
    return _target(row, evidence)


# -- applying one event to the database ------------------------------------------------------


@dataclass(frozen=True)
class EventTarget:
    """Which row an event is about, as its provider variables name it."""

    campaign_id: str
    attempt_id: int
    batch_id: int
    recipient_id: int
    email: str


class Applied(StrEnum):
    """What :func:`apply_evidence` did."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"  # a duplicate, or weaker than what the row already says
    UNKNOWN = "unknown"  # no such batch/recipient, or the ids and address disagree


def _matches(row: Any, target: EventTarget) -> bool:
    return (
        str(row.campaign_id) == target.campaign_id
        and str(row.batch_campaign_id) == target.campaign_id
        and int(row.attempt_id) == target.attempt_id
        and str(row.email).lower() == target.email.strip().lower()
    )


def apply_evidence(state: AppState, target: EventTarget, evidence: Evidence) -> Applied:
    """Apply one event to its recipient row in its own transaction (committed or rolled back).

    The row is read (locked ``FOR UPDATE`` on PostgreSQL), the new state computed with
    :func:`next_state`, and written with a compare-and-set on the columns read, so concurrent
    events for the same recipient each apply exactly once. ``delivered_count`` of the campaign
    is incremented only by the event that actually moves the row to DELIVERED.
    """
    session = state.db.session
    recipients = state.models.recipient.__table__
    batches = state.models.batch.__table__
    r, b = recipients.c, batches.c
    query = (
        sa.select(
            r.campaign_id,
            r.email,
            r.status,
            r.failure_kind,
            r.error_code,
            r.error_message,
            r.delivered_at,
            b.campaign_id.label("batch_campaign_id"),
            b.attempt_id,
        )
        .select_from(recipients)
        .join(batches, b.id == target.batch_id)
        .where(r.id == target.recipient_id)
        .with_for_update(of=recipients)
    )
    for _ in range(_CAS_TRIES):
        row = session.execute(query).first()
        if row is None or not _matches(row, target):
            session.rollback()
            return Applied.UNKNOWN
        current = RowState(
            RecipientStatus(row.status),
            row.failure_kind,
            row.error_code,
            row.error_message,
            row.delivered_at,
        )
        new = next_state(current, evidence)
        if new is None:
            session.rollback()
            return Applied.UNCHANGED
        if _compare_and_set(state, target.recipient_id, current, new):
            if new.status is RecipientStatus.DELIVERED and current.status != new.status:
                count_deliveries(state, row.campaign_id, 1)
            session.commit()
            return Applied.CHANGED
        session.rollback()
    raise RuntimeError(
        f"recipient {target.recipient_id} kept changing while an event was applied; "
        "the provider will deliver the event again"
    )


def _compare_and_set(state: AppState, recipient_id: int, old: RowState, new: RowState) -> bool:
    r = state.models.recipient.__table__.c
    result = state.db.session.execute(
        sa.update(state.models.recipient.__table__)
        .where(
            r.id == recipient_id,
            r.status == old.status,
            r.failure_kind.is_not_distinct_from(old.failure_kind),
            r.error_code.is_not_distinct_from(old.error_code),
            r.error_message.is_not_distinct_from(old.error_message),
            r.delivered_at.is_not_distinct_from(old.delivered_at),
        )
        .values(
            status=new.status,
            failure_kind=new.failure_kind,
            error_code=new.error_code,
            error_message=new.error_message,
            delivered_at=new.delivered_at,
        )
    )
    return bool(result.rowcount == 1)


def count_deliveries(state: AppState, campaign_id: Any, delivered: int) -> None:
    """Add ``delivered`` to the campaign's ``delivered_count`` (in the caller's transaction).

    An increment, not a recount: concurrent transactions each add what they themselves
    changed, and the row lock on the campaign serializes them.
    """
    if delivered <= 0:
        return
    campaigns = state.models.campaign.__table__
    (key,) = campaigns.primary_key.columns
    state.db.session.execute(
        sa.update(campaigns)
        .where(key == campaign_id)
        .values(
            column_values(campaigns, delivered_count=columns(campaigns).delivered_count + delivered)
        )
    )
