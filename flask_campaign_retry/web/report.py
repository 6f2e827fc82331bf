"""The delivery report of one campaign, and the paginated list of who did not get it.

Both are read-only and JSON-ready (plain dicts, lists, numbers, strings; datetimes as ISO 8601
with a ``Z``). The JSON route, the Jinja panel and ``flask campaign-retry status`` all render
the same :func:`delivery_report`, so what a person reads in the UI, the API and the terminal is
computed once, by the same queries.

Every query is bounded: recipient counts are one ``GROUP BY status``, failures are grouped and
capped, failed recipients come a keyset page at a time. Memory stays flat however large the
campaign is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.campaign_fields import fields
from flask_campaign_retry.clock import isoformat_utc
from flask_campaign_retry.policy.eligibility import RetryEligibility, retry_eligibility
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import (
    ACCEPTED_RECIPIENT_STATUSES,
    BatchStatus,
    EmailStatus,
    RecipientStatus,
)

#: Failure groups a report lists (largest first); the rest are summed in ``other``.
DEFAULT_FAILURE_GROUPS = 10
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
#: Recipients the failed-recipient listing shows: they did not (knowingly) get the email.
UNDELIVERED_STATUSES = (RecipientStatus.FAILED, RecipientStatus.UNCERTAIN)


def recipient_counts(state: AppState, campaign_id: Any) -> dict[str, int]:
    """Recipients per status (every status present, zero when none), in one ``GROUP BY``.

    A PENDING row of a batch that is SENDING was taken by that batch's claim and is in flight
    (the engine writes each row once, with its outcome: :mod:`engine.claims`), so it is counted
    as SENDING; the second query reads only the campaign's SENDING batches.
    """
    session = state.db.session
    r = state.models.recipient.__table__.c
    b = state.models.batch.__table__.c
    rows = session.execute(
        sa.select(r.status, sa.func.count()).where(r.campaign_id == campaign_id).group_by(r.status)
    ).all()
    counts = {status.value: 0 for status in RecipientStatus}
    for status, count in rows:
        counts[RecipientStatus(status).value] = int(count)
    if counts[RecipientStatus.PENDING]:
        in_flight = session.execute(
            sa.select(sa.func.count())
            .select_from(state.models.recipient.__table__)
            .join(state.models.batch.__table__, b.id == r.batch_id)
            .where(
                b.campaign_id == campaign_id,
                b.status == BatchStatus.SENDING,
                r.campaign_id == campaign_id,
                r.status == RecipientStatus.PENDING,
            )
        ).scalar_one()
        counts[RecipientStatus.PENDING] -= int(in_flight)
        counts[RecipientStatus.SENDING] += int(in_flight)
    return counts


def failure_groups(
    state: AppState, campaign_id: Any, *, limit: int = DEFAULT_FAILURE_GROUPS
) -> dict[str, Any]:
    """Failed and uncertain recipients grouped by (failure kind, error code, message).

    Returns ``{"groups": [{"failure_kind", "error_code", "error_message", "count"}, ...],
    "other": <recipients in groups beyond limit>}``, largest groups first.
    """
    r = state.models.recipient.__table__.c
    count = sa.func.count().label("n")
    grouped = (
        sa.select(r.failure_kind, r.error_code, r.error_message, count)
        .where(r.campaign_id == campaign_id, r.status.in_(UNDELIVERED_STATUSES))
        .group_by(r.failure_kind, r.error_code, r.error_message)
    )
    rows = state.db.session.execute(
        grouped.order_by(count.desc(), r.failure_kind, r.error_code, r.error_message).limit(limit)
    ).all()
    groups = [
        {"failure_kind": kind, "error_code": code, "error_message": message, "count": int(n)}
        for kind, code, message, n in rows
    ]
    other = 0
    if len(groups) == limit:
        total = state.db.session.execute(
            sa.select(sa.func.count())
            .select_from(state.models.recipient.__table__)
            .where(r.campaign_id == campaign_id, r.status.in_(UNDELIVERED_STATUSES))
        ).scalar_one()
        other = int(total) - sum(group["count"] for group in groups)
    return {"groups": groups, "other": other}


def attempt_history(state: AppState, campaign_id: Any) -> list[dict[str, Any]]:
    """Every attempt of the campaign, oldest first (at most ``max_retries`` + 1 rows)."""
    a = state.models.attempt.__table__.c
    rows = state.db.session.execute(
        sa.select(
            a.id,
            a.number,
            a.trigger,
            a.triggered_by,
            a.started_at,
            a.ended_at,
            a.targeted,
            a.sent,
            a.failed,
            a.uncertain,
            a.skipped,
            a.outcome,
            a.error_summary,
            a.paused_until,
            a.prepared,
        )
        .where(a.campaign_id == campaign_id)
        .order_by(a.number)
    ).all()
    carried = _providers_by_attempt(state, campaign_id)
    return [
        {
            "id": row.id,
            "number": row.number,
            "trigger": row.trigger,
            "triggered_by": row.triggered_by,
            "started_at": isoformat_utc(row.started_at),
            "ended_at": isoformat_utc(row.ended_at),
            "targeted": row.targeted,
            "sent": row.sent,
            "failed": row.failed,
            "uncertain": row.uncertain,
            "skipped": row.skipped,
            "outcome": row.outcome,
            "error_summary": row.error_summary,
            "paused_until": isoformat_utc(row.paused_until),
            "prepared": bool(row.prepared),
            "providers": carried.get(row.id, {}),
        }
        for row in rows
    ]


def _providers_by_attempt(state: AppState, campaign_id: Any) -> dict[int, dict[str, int]]:
    """attempt id -> {provider key: batches it carried} (one GROUP BY)."""
    b = state.models.batch.__table__.c
    rows = state.db.session.execute(
        sa.select(b.attempt_id, b.provider, sa.func.count())
        .where(b.campaign_id == campaign_id, b.provider.isnot(None))
        .group_by(b.attempt_id, b.provider)
    ).all()
    carried: dict[int, dict[str, int]] = {}
    for attempt_id, provider, count in rows:
        carried.setdefault(int(attempt_id), {})[str(provider)] = int(count)
    return carried


def delivery_report(
    state: AppState,
    campaign: Any,
    *,
    now: datetime | None = None,
    groups: int = DEFAULT_FAILURE_GROUPS,
    eligibility: RetryEligibility | None = None,
) -> dict[str, Any]:
    """Everything a person needs to understand where a campaign's delivery stands.

    ``accepted`` counts recipients the provider accepted so far (live while SENDING);
    ``successful_sends`` is the campaign column the finalizer writes when an attempt ends.
    ``retry`` is :meth:`RetryEligibility.as_dict` for a retry without uncertain recipients
    (pass ``eligibility`` when the caller has already computed it).
    """
    counts = recipient_counts(state, campaign.id)
    accepted = sum(counts[status] for status in ACCEPTED_RECIPIENT_STATUSES)
    if eligibility is None:
        eligibility = retry_eligibility(state, campaign, now=now)
    return {
        "id": campaign.id,
        "status": EmailStatus(fields(campaign).status).value,
        "total_recipients": fields(campaign).total_recipients,
        "successful_sends": fields(campaign).successful_sends,
        "accepted": accepted,
        "delivered_count": fields(campaign).delivered_count,
        "recipients": counts,
        "failure_reason": fields(campaign).failure_reason,
        "failed_at": isoformat_utc(fields(campaign).failed_at),
        "retry_count": fields(campaign).retry_count,
        "max_retries": fields(campaign).max_retries,
        "retry": eligibility.as_dict(),
        "next_auto_retry_at": isoformat_utc(fields(campaign).next_auto_retry_at),
        "scheduled_at": isoformat_utc(getattr(fields(campaign), "scheduled_at", None)),
        "last_attempt_at": isoformat_utc(fields(campaign).last_attempt_at),
        "cloned_from_id": fields(campaign).cloned_from_id,
        "failures": failure_groups(state, campaign.id, limit=groups),
        "attempts": attempt_history(state, campaign.id),
    }


@dataclass(frozen=True)
class RecipientPage:
    """One keyset page of recipients; ``next_after`` is the cursor of the next page or None."""

    items: list[dict[str, Any]]
    next_after: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_after": self.next_after}


def clamp_page_size(value: int | None) -> int:
    """A page size between 1 and :data:`MAX_PAGE_SIZE` (default when None)."""
    if value is None:
        return DEFAULT_PAGE_SIZE
    return max(1, min(MAX_PAGE_SIZE, value))


def failed_recipients_page(
    state: AppState, campaign: Any, *, after: int | None = None, limit: int | None = None
) -> RecipientPage:
    """FAILED and UNCERTAIN recipients with their reasons, by ascending row id after ``after``.

    Keyset pagination (``WHERE id > :after ORDER BY id LIMIT n``) uses the primary key, so a
    page costs the same at the millionth recipient as at the first.
    """
    size = clamp_page_size(limit)
    r = state.models.recipient.__table__.c
    query = sa.select(
        r.id, r.email, r.status, r.failure_kind, r.error_code, r.error_message, r.submissions
    ).where(r.campaign_id == campaign.id, r.status.in_(UNDELIVERED_STATUSES))
    if after is not None:
        query = query.where(r.id > after)
    rows = state.db.session.execute(query.order_by(r.id).limit(size + 1)).all()
    items = [
        {
            "id": row.id,
            "email": row.email,
            "status": RecipientStatus(row.status).value,
            "failure_kind": row.failure_kind,
            "error_code": row.error_code,
            "error_message": row.error_message,
            "submissions": row.submissions,
        }
        for row in rows[:size]
    ]
    next_after = items[-1]["id"] if len(rows) > size else None
    return RecipientPage(items, next_after)
