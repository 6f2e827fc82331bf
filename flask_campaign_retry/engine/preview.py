"""Retry preview: who a Retry Send would send to right now, and who it would not, and why.

It applies the same rules as the retry, in the same order, so the two agree:

1. targeting: :func:`policy.eligibility.retryable_condition` (the one definition of
   "retryable", used by the retry's transition and by its targeting);
2. the batch job's per-recipient checks: the host's ``exclude_recipients`` hook (SKIPPED) and
   :func:`engine.addresses.address_problem` (FAILED permanent, never submitted).

The retryable rows are streamed by one query in partitions of :data:`CHUNK` (a server-side cursor
on PostgreSQL) and the hook is asked once per partition, so memory does not grow with the list. One
difference is stated, not hidden: a retry's preparation first asks the provider about UNCERTAIN
recipients, and those the provider confirms never got the email become retryable then.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.engine.addresses import address_problem
from flask_campaign_retry.policy.eligibility import (
    RETRYABLE_FAILURE_KINDS,
    RetryEligibility,
    retry_eligibility,
    retryable_condition,
)
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import RecipientStatus

CHUNK = 1000
#: Reason groups listed (largest first); the rest are summed in ``other``.
MAX_GROUPS = 10
DEFAULT_PAGE = 50
MAX_PAGE = 200

Reason = tuple[str, str | None, int | None, str | None]
"""(status, failure kind, error code, error message) of a recipient row."""


@dataclass(frozen=True)
class RetryPreview:
    """The answer of :func:`retry_preview` (``as_dict`` is the JSON of the route)."""

    eligibility: RetryEligibility
    include_uncertain: bool
    would_send: int
    reasons: list[dict[str, Any]]
    other_reasons: int
    not_resent: dict[str, int]
    permanent_reasons: list[dict[str, Any]]
    items: list[dict[str, Any]]
    next_after: int | None

    @property
    def button_text(self) -> str:
        """ "Retry 50 recipients (2 attempts left)"."""
        n = self.would_send
        left = self.eligibility.attempts_left
        return (
            f"Retry {n:,} recipient{'' if n == 1 else 's'} "
            f"({left} attempt{'' if left == 1 else 's'} left)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.eligibility.allowed,
            "code": self.eligibility.code,
            "reason": self.eligibility.reason,
            "attempts_left": self.eligibility.attempts_left,
            "include_uncertain": self.include_uncertain,
            "would_send": self.would_send,
            "by_reason": self.reasons,
            "other_reasons": self.other_reasons,
            "not_resent": self.not_resent,
            "permanent_reasons": self.permanent_reasons,
            "items": self.items,
            "next_after": self.next_after,
        }


def _group(counter: Counter[Reason]) -> tuple[list[dict[str, Any]], int]:
    ordered = sorted(counter.items(), key=lambda kv: (-kv[1], tuple(map(str, kv[0]))))
    groups = [
        {
            "status": status,
            "failure_kind": kind,
            "error_code": code,
            "error_message": message,
            "count": count,
        }
        for (status, kind, code, message), count in ordered[:MAX_GROUPS]
    ]
    return groups, sum(count for _, count in ordered[MAX_GROUPS:])


def _count(state: AppState, condition: sa.ColumnElement[bool]) -> int:
    recipients = state.models.recipient.__table__
    return int(
        state.db.session.execute(
            sa.select(sa.func.count()).select_from(recipients).where(condition)
        ).scalar_one()
    )


def _permanent_reasons(state: AppState, campaign_id: Any) -> list[dict[str, Any]]:
    r = state.models.recipient.__table__.c
    count = sa.func.count().label("n")
    rows = state.db.session.execute(
        sa.select(r.error_code, r.error_message, count)
        .where(
            r.campaign_id == campaign_id,
            r.status == RecipientStatus.FAILED,
            r.failure_kind.notin_(RETRYABLE_FAILURE_KINDS),
        )
        .group_by(r.error_code, r.error_message)
        .order_by(count.desc(), r.error_code, r.error_message)
        .limit(MAX_GROUPS)
    ).all()
    return [{"error_code": c, "error_message": m, "count": int(n)} for c, m, n in rows]


def retry_preview(
    state: AppState,
    campaign: Any,
    *,
    include_uncertain: bool = False,
    after: int | None = None,
    limit: int | None = None,
) -> RetryPreview:
    """What a retry of ``campaign`` would do now; ``after``/``limit`` page the list of who."""
    size = DEFAULT_PAGE if limit is None else max(1, min(MAX_PAGE, limit))
    session = state.db.session
    recipients = state.models.recipient.__table__
    r = recipients.c
    hook = state.extension.hooks.exclude_recipients
    condition = retryable_condition(recipients, campaign.id, include_uncertain)
    reasons: Counter[Reason] = Counter()
    excluded = invalid = 0
    items: list[dict[str, Any]] = []
    next_after: int | None = None
    result = session.execute(
        sa.select(r.id, r.email, r.status, r.failure_kind, r.error_code, r.error_message)
        .where(condition)
        .order_by(r.id)
        .execution_options(yield_per=CHUNK)
    )
    for rows in result.partitions():
        skip = set(hook(campaign, [row.email for row in rows])) if hook is not None else set()
        for row in rows:
            if row.email in skip:
                excluded += 1
                continue
            if address_problem(row.email) is not None:
                invalid += 1
                continue
            status = RecipientStatus(row.status).value
            reasons[(status, row.failure_kind, row.error_code, row.error_message)] += 1
            if (after is None or row.id > after) and len(items) <= size:
                items.append(
                    {
                        "id": int(row.id),
                        "email": row.email,
                        "status": status,
                        "failure_kind": row.failure_kind,
                        "error_code": row.error_code,
                        "error_message": row.error_message,
                    }
                )
    if len(items) > size:
        items = items[:size]
        next_after = items[-1]["id"]
    groups, other = _group(reasons)
    uncertain = (
        0
        if include_uncertain
        else _count(
            state, sa.and_(r.campaign_id == campaign.id, r.status == RecipientStatus.UNCERTAIN)
        )
    )
    permanent = _count(
        state,
        sa.and_(
            r.campaign_id == campaign.id,
            r.status == RecipientStatus.FAILED,
            r.failure_kind.notin_(RETRYABLE_FAILURE_KINDS),
        ),
    )
    skipped = _count(
        state, sa.and_(r.campaign_id == campaign.id, r.status == RecipientStatus.SKIPPED)
    )
    eligibility = retry_eligibility(state, campaign, include_uncertain=include_uncertain)
    return RetryPreview(
        eligibility=eligibility,
        include_uncertain=include_uncertain,
        would_send=sum(reasons.values()),
        reasons=groups,
        other_reasons=other,
        not_resent={
            "permanent": permanent,
            "uncertain": uncertain,
            "excluded_now": excluded,
            "invalid_address": invalid,
            "skipped_before": skipped,
        },
        permanent_reasons=_permanent_reasons(state, campaign.id),
        items=items,
        next_after=next_after,
    )
