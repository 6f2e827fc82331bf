"""Scheduled sends: DRAFT -> SCHEDULED at a UTC time, started then through RQ's scheduler.

Every transition is one conditional UPDATE on the campaign row, so scheduling, rescheduling,
cancelling and the start never interleave badly:

- ``schedule_campaign``: DRAFT or SCHEDULED -> SCHEDULED with ``scheduled_at`` (a reschedule
  only moves the time), then a start job is enqueued for that time (ids only);
- ``cancel_schedule``: SCHEDULED -> DRAFT;
- ``start_due`` (the job, and the recovery sweep after downtime): SCHEDULED -> SENDING only if
  ``scheduled_at`` is due now and not older than ``CAMPAIGN_RETRY_SCHEDULE_GRACE``. A job left
  over from an earlier time (rescheduled later, or cancelled) finds the condition false and does
  nothing; of a cancel and a start racing, exactly one UPDATE matches. A campaign overdue beyond
  the grace stays SCHEDULED with a reason in ``failure_reason`` instead of going out days late.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from flask_campaign_retry.campaign_fields import column_values, columns, fields
from flask_campaign_retry.clock import as_naive_utc, utcnow
from flask_campaign_retry.engine.sending import start_send
from flask_campaign_retry.errors import InvalidScheduleTime, TransitionRefused
from flask_campaign_retry.queue.names import SCHEDULE_JOB
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import EmailStatus

log = logging.getLogger("flask_campaign_retry")

SCHEDULABLE = (EmailStatus.DRAFT, EmailStatus.SCHEDULED)
#: Who started a scheduled campaign, in the attempt log.
SCHEDULER_ACTOR = "scheduler"
EXAMPLE = "2026-12-24T09:00:00Z"


def _display(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_when(text: str) -> datetime:
    """An ISO 8601 time with an explicit zone (``Z`` or ``+01:00``) as naive UTC.

    A time without a zone is refused rather than guessed: "09:00" means different instants on
    the server, in the browser and in the user's head.
    """
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise InvalidScheduleTime(f"Give the time to send at, e.g. {EXAMPLE}.")
    try:
        value = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise InvalidScheduleTime(
            f"{raw[:40]!r} is not an ISO 8601 time; write it like {EXAMPLE}."
        ) from None
    if value.tzinfo is None:
        raise InvalidScheduleTime(
            f"{raw[:40]!r} has no time zone; add 'Z' for UTC (e.g. {EXAMPLE}) or an offset "
            "such as +01:00."
        )
    return as_naive_utc(value)


def normalize_time(at: datetime | str, now: datetime) -> datetime:
    """``at`` as naive UTC, checked to be in the future.

    A string goes through :func:`parse_when` (zone required). A ``datetime`` may be aware (any
    zone) or naive, which is taken to be UTC, as every time in this package is.
    """
    if isinstance(at, str):
        when = parse_when(at)
    elif isinstance(at, datetime):
        when = as_naive_utc(at)
    else:
        raise InvalidScheduleTime(
            f"The time to send at must be a datetime or an ISO 8601 string, got "
            f"{type(at).__name__}."
        )
    if when <= now:
        raise InvalidScheduleTime(
            f"{_display(when)} is in the past (it is now {_display(now)}); choose a later time, "
            "or send the campaign now."
        )
    return when


def schedule_campaign(state: AppState, campaign: Any, at: datetime | str) -> datetime:
    """Schedule (or reschedule) ``campaign`` for ``at``; returns the stored naive-UTC time.

    Raises :class:`InvalidScheduleTime` for a bad time and :class:`TransitionRefused` when the
    campaign is neither DRAFT nor SCHEDULED (nothing is written then).
    """
    now = utcnow()
    when = normalize_time(at, now)
    session = state.db.session
    campaigns = state.models.campaign.__table__
    c = columns(campaigns)
    moved = session.execute(
        sa.update(campaigns)
        .where(c.id == campaign.id, c.status.in_(SCHEDULABLE))
        .values(
            column_values(
                campaigns, status=EmailStatus.SCHEDULED, scheduled_at=when, failure_reason=None
            )
        )
    )
    if moved.rowcount != 1:
        session.rollback()
        session.refresh(campaign)
        raise TransitionRefused(
            "not_schedulable",
            f"Campaign {campaign.id} is {EmailStatus(fields(campaign).status).value}; only a "
            "DRAFT or SCHEDULED campaign can be scheduled.",
        )
    session.commit()
    session.refresh(campaign)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state.queue(app).enqueue(SCHEDULE_JOB, campaign.id, at=when)
    return when


def cancel_schedule(state: AppState, campaign: Any) -> None:
    """SCHEDULED -> DRAFT. Raises :class:`TransitionRefused` if it is not SCHEDULED (any more):
    then the start won the race, and the campaign is sending."""
    session = state.db.session
    campaigns = state.models.campaign.__table__
    c = columns(campaigns)
    moved = session.execute(
        sa.update(campaigns)
        .where(c.id == campaign.id, c.status == EmailStatus.SCHEDULED)
        .values(
            column_values(
                campaigns, status=EmailStatus.DRAFT, scheduled_at=None, failure_reason=None
            )
        )
    )
    if moved.rowcount != 1:
        session.rollback()
        session.refresh(campaign)
        status = EmailStatus(fields(campaign).status)
        started = status is not EmailStatus.DRAFT and fields(campaign).scheduled_at is not None
        why = "its scheduled start already happened." if started else "nothing to cancel."
        raise TransitionRefused(
            "already_started" if started else "not_scheduled",
            f"Campaign {campaign.id} is {status.value}, not SCHEDULED: {why}",
        )
    session.commit()
    session.refresh(campaign)


def _too_late_reason(due: datetime, grace: timedelta, now: datetime) -> str:
    return (
        f"Not started: it was due at {_display(due)}, more than the grace of "
        f"{int(grace.total_seconds())} s (CAMPAIGN_RETRY_SCHEDULE_GRACE) before the scheduler "
        f"could run it at {_display(now)}. Send it now, or schedule it again."
    )


def start_due(state: AppState, campaign_id: Any, now: datetime | None = None) -> str:
    """Start ``campaign_id`` if it is SCHEDULED, due, and within the grace; else explain why not.

    Safe to call any number of times, from any number of processes: only the UPDATE that still
    finds the campaign SCHEDULED at a due time moves it, once.
    """
    now = now or utcnow()
    session = state.db.session
    model = state.models.campaign
    campaign = session.get(model, campaign_id, populate_existing=True)
    if campaign is None or EmailStatus(fields(campaign).status) is not EmailStatus.SCHEDULED:
        session.rollback()
        return "not scheduled"
    due = fields(campaign).scheduled_at
    if due is None or due > now:
        session.rollback()
        return "not due"  # rescheduled later: the job for the new time starts it
    c = columns(model.__table__)
    grace = state.settings.schedule_grace
    if due < now - grace:
        reason = _too_late_reason(due, grace, now)
        session.execute(
            sa.update(model.__table__)
            .where(c.id == campaign_id, c.status == EmailStatus.SCHEDULED, c.scheduled_at == due)
            .values(column_values(model, failure_reason=reason))
        )
        session.commit()
        log.warning("scheduled campaign %s not started: %s", campaign_id, reason)
        return "too late"
    hooks = state.extension.hooks
    if hooks.recipients_loader is None or hooks.message_builder is None:
        session.rollback()
        log.error("scheduled campaign %s not started: send hooks are not registered", campaign_id)
        return "hooks missing"
    try:
        start_send(
            state,
            campaign,
            SCHEDULER_ACTOR,
            only_if=sa.and_(
                c.status == EmailStatus.SCHEDULED,
                c.scheduled_at == due,
                c.scheduled_at <= now,
            ),
        )
    except TransitionRefused:
        return "lost the race"  # cancelled or rescheduled in between: nothing was written
    return "started"


def overdue_campaigns(state: AppState, now: datetime) -> list[Any]:
    """SCHEDULED campaigns whose time has come and that carry no "too late" reason yet."""
    c = columns(state.models.campaign.__table__)
    ids = list(
        state.db.session.execute(
            sa.select(c.id).where(
                c.status == EmailStatus.SCHEDULED,
                c.scheduled_at.isnot(None),
                c.scheduled_at <= now,
                c.failure_reason.is_(None),
            )
        ).scalars()
    )
    state.db.session.rollback()
    return ids


def run_scheduled_start(campaign_id: Any) -> str:
    """The RQ job enqueued for a campaign's scheduled time."""
    return start_due(get_state(), campaign_id)
