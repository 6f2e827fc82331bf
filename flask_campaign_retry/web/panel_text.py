"""Words and times as the panel shows them to people: status and failure-kind labels, UTC
times, the countdown's durations."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_campaign_retry.statuses import EmailStatus, FailureKind

STATUS_LABELS = {
    EmailStatus.DRAFT: "Draft",
    EmailStatus.SCHEDULED: "Scheduled",
    EmailStatus.SENDING: "Sending",
    EmailStatus.SENT: "Sent",
    EmailStatus.FAILED: "Failed",
    EmailStatus.PARTIALLY_SENT: "Partially sent",
}
KIND_LABELS = {
    FailureKind.TRANSIENT.value: "temporary failure",
    FailureKind.PERMANENT.value: "rejected",
    FailureKind.FATAL.value: "refused for the whole campaign",
    FailureKind.UNCERTAIN.value: "outcome unknown",
}


def display_time(value: datetime | str | None) -> str:
    """``2026-11-29 09:27 UTC`` from a naive-UTC datetime or a report's ISO string."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.removesuffix("Z"))
    return value.strftime("%Y-%m-%d %H:%M UTC")


def remaining_text(delta: timedelta) -> str:
    """A short duration for the countdown: "23 h 5 min", "4 min", "30 s"."""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"
