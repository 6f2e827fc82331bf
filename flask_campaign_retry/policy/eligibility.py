"""Whether a campaign may be retried now, and why not: shared by the API, routes and panel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.campaign_fields import fields
from flask_campaign_retry.clock import isoformat_utc, utcnow
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import EmailStatus, FailureKind, RecipientStatus

RETRYABLE_CAMPAIGN_STATUSES = (EmailStatus.FAILED, EmailStatus.PARTIALLY_SENT)
#: Failure kinds a retry resends. FATAL (bad key, domain refused) reached nobody, so once the
#: configuration is fixed those recipients are as retryable as transient failures.
RETRYABLE_FAILURE_KINDS = (FailureKind.TRANSIENT.value, FailureKind.FATAL.value)


def retryable_condition(
    recipients: sa.Table, campaign_id: Any, include_uncertain: bool
) -> sa.ColumnElement[bool]:
    """Recipients a retry targets: transient/fatal failures and never-submitted ones, plus
    UNCERTAIN ones only when the caller asked for them explicitly."""
    r = recipients.c
    options = [
        r.status == RecipientStatus.PENDING,
        sa.and_(r.status == RecipientStatus.FAILED, r.failure_kind.in_(RETRYABLE_FAILURE_KINDS)),
    ]
    if include_uncertain:
        options.append(r.status == RecipientStatus.UNCERTAIN)
    return sa.and_(r.campaign_id == campaign_id, sa.or_(*options))


@dataclass(frozen=True)
class RetryEligibility:
    """The answer to "can this campaign be retried now?" with everything a UI shows."""

    allowed: bool
    code: str | None
    reason: str | None
    deadline: datetime | None
    attempts_left: int
    retryable: int
    uncertain: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "code": self.code,
            "reason": self.reason,
            "deadline": isoformat_utc(self.deadline),
            "attempts_left": self.attempts_left,
            "retryable": self.retryable,
            "uncertain": self.uncertain,
        }


def _count(state: AppState, condition: sa.ColumnElement[bool]) -> int:
    recipients = state.models.recipient.__table__
    return int(
        state.db.session.execute(
            sa.select(sa.func.count()).select_from(recipients).where(condition)
        ).scalar_one()
    )


def _has_rows(state: AppState, campaign_id: Any) -> bool:
    recipients = state.models.recipient.__table__
    found = state.db.session.execute(
        sa.select(sa.literal(1)).where(recipients.c.campaign_id == campaign_id).limit(1)
    ).first()
    return found is not None


def retry_eligibility(
    state: AppState, campaign: Any, *, include_uncertain: bool = False, now: datetime | None = None
) -> RetryEligibility:
    """Check every rule of a manual retry, in the order a person would want to hear them."""
    now = now or utcnow()
    recipients = state.models.recipient.__table__
    deadline = (
        fields(campaign).failed_at + state.settings.window if fields(campaign).failed_at else None
    )
    attempts_left = max(0, fields(campaign).max_retries - fields(campaign).retry_count)
    retryable = _count(state, retryable_condition(recipients, campaign.id, include_uncertain))
    uncertain = _count(
        state,
        sa.and_(
            recipients.c.campaign_id == campaign.id,
            recipients.c.status == RecipientStatus.UNCERTAIN,
        ),
    )

    def refuse(code: str, reason: str) -> RetryEligibility:
        return RetryEligibility(False, code, reason, deadline, attempts_left, retryable, uncertain)

    status = EmailStatus(fields(campaign).status)
    if status is EmailStatus.SENDING:
        return refuse("already_sending", "The campaign is already sending.")
    if status not in RETRYABLE_CAMPAIGN_STATUSES:
        return refuse(
            "not_retryable_status",
            f"Only FAILED or PARTIALLY_SENT campaigns can be retried; this one is {status.value}.",
        )
    if deadline is None or now > deadline:
        when = deadline.strftime("%Y-%m-%d %H:%M UTC") if deadline else "an unknown time"
        return refuse("window_expired", f"The retry window ended at {when}.")
    if attempts_left <= 0:
        return refuse(
            "no_attempts_left", f"No retry attempts left (all {fields(campaign).max_retries} used)."
        )
    if retryable == 0 and uncertain == 0 and not _has_rows(state, campaign.id):
        # The list was never frozen (its preparation failed): a retry runs the loader again.
        return RetryEligibility(True, None, None, deadline, attempts_left, retryable, uncertain)
    if retryable == 0:
        extra = (
            f" {uncertain:,} recipients have an unknown outcome; include them explicitly to "
            "resend to them."
            if uncertain and not include_uncertain
            else ""
        )
        return refuse("nothing_to_retry", "No recipient is left to retry." + extra)
    return RetryEligibility(True, None, None, deadline, attempts_left, retryable, uncertain)
