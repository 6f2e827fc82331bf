"""A failure reason a person can read, computed from the recipient rows in one query; reasons
that differ only by an address or a message id count as one cause."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.engine.reason_causes import grouped_by_cause
from flask_campaign_retry.statuses import FailureKind, RecipientStatus

_KIND_WORDS = {
    FailureKind.TRANSIENT.value: "temporary failure",
    FailureKind.PERMANENT.value: "rejected",
    FailureKind.FATAL.value: "refused for the whole campaign",
    FailureKind.UNCERTAIN.value: "outcome unknown",
}
MAX_GROUPS = 4


def summarize_failures(
    session: Any,
    recipients: sa.Table,
    campaign_id: Any,
    *,
    not_accepted: int,
    considered: int,
    never_submitted: int,
    halt_reason: str | None,
) -> str | None:
    """E.g. "1,003 of 2,500 recipients did not get the email: 1,000 temporary failure (HTTP 500
    from Mailgun: ...); 3 rejected (invalid address ...)." or None when nothing failed."""
    if halt_reason:
        halt_reason = halt_reason.rstrip(".")  # a fix-it message may end with its own period
    if not_accepted == 0:
        return f"Sending stopped: {halt_reason}." if halt_reason else None
    r = recipients.c
    rows = session.execute(
        sa.select(r.failure_kind, r.error_message, sa.func.count())
        .where(
            r.campaign_id == campaign_id,
            r.status.in_([RecipientStatus.FAILED, RecipientStatus.UNCERTAIN]),
        )
        .group_by(r.failure_kind, r.error_message)
    )
    rows = grouped_by_cause(rows)
    parts = [
        f"{n:,} {_KIND_WORDS.get(kind or '', 'failed')} ({message or 'no detail'})"
        for kind, message, n in rows[:MAX_GROUPS]
    ]
    if len(rows) > MAX_GROUPS:
        parts.append("and other errors")
    if never_submitted:
        parts.append(f"{never_submitted:,} never submitted")
    text = f"{not_accepted:,} of {considered:,} recipients did not get the email: " + "; ".join(
        parts
    )
    if halt_reason:
        text = f"Sending stopped: {halt_reason}. " + text
    return text + "."
