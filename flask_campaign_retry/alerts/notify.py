"""Admin webhook: which events a finished attempt raises, and queueing them for delivery.

After an attempt is finalized (and committed), :func:`notify_attempt_finished` decides the
events with :func:`events_for`, deduplicates them, stores one delivery per configured URL and
enqueues an RQ job per delivery (:mod:`.delivery` sends it, signed as described in
:mod:`.signing`, to an address allowed by :mod:`.targets`). It only talks to the
database (one small query) and to Redis; it never waits on a receiver and never raises into its
caller, because an alert must not break or slow the send it reports on.

Events (a campaign can raise several at once; each is one POST per URL):

``campaign.failed`` / ``campaign.partially_sent``
    The attempt left the campaign FAILED / PARTIALLY_SENT.
``campaign.retries_exhausted``
    The campaign is not SENT and ``retry_count >= max_retries``: no retry is left.
``campaign.repeated_failures``
    The most recent attempts, counted back from this one until one that did not fail, all
    ended FAILED, and there are at least ``CAMPAIGN_RETRY_ADMIN_WEBHOOK_THRESHOLD`` of them.

Each event is sent at most once per (campaign, event, attempt): calling notify twice for the
same attempt (a re-run finalizer, a duplicated call) queues nothing the second time.

Payload (JSON object, UTF-8, keys sorted; no secret is ever part of it)::

    {
      "event": "campaign.failed",
      "event_id": "5f0c...",            # the same for every URL of one event; dedupe on it
      "occurred_at": "2026-05-09T07:35:25Z",
      "campaign_id": 42,
      "status": "FAILED",
      "failure_reason": "1,500 of 1,500 recipients did not get the email: ...",
      "failed_at": "2026-05-09T07:35:25Z",
      "retry_count": 1,
      "max_retries": 3,
      "successful_sends": 0,
      "total_recipients": 1500,
      "attempt_number": 2,
      "attempt_outcome": "FAILED",
      "consecutive_failed_attempts": 2,
      "next_auto_retry_at": null        # set when an automatic retry is already planned
    }

Verifying the signature on the receiving side is shown in :mod:`.signing`.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import object_session

from flask_campaign_retry.alerts.config import (
    ALL_EVENTS,
    EVENT_FAILED,
    EVENT_PARTIALLY_SENT,
    EVENT_REPEATED_FAILURES,
    EVENT_RETRIES_EXHAUSTED,
    load_webhook_options,
)
from flask_campaign_retry.alerts.delivery import JOB
from flask_campaign_retry.alerts.store import create_deliveries, namespace, record_key
from flask_campaign_retry.campaign_fields import fields
from flask_campaign_retry.clock import isoformat_utc, utcnow
from flask_campaign_retry.config import Settings
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import EmailStatus

log = logging.getLogger("flask_campaign_retry")

__all__ = [
    "ALL_EVENTS",
    "EVENT_FAILED",
    "EVENT_PARTIALLY_SENT",
    "EVENT_REPEATED_FAILURES",
    "EVENT_RETRIES_EXHAUSTED",
    "build_payload",
    "events_for",
    "failed_streak",
    "notify_attempt_finished",
]

#: How long "this event was already queued" is remembered; far beyond any retry window.
DEDUPE_TTL = int(timedelta(days=30).total_seconds())
#: Attempts looked at when counting a failure streak (max_retries is at most 100).
STREAK_LOOKBACK = 101


def failed_streak(attempt: Any, session: Any = None) -> int:
    """How many attempts of ``attempt``'s campaign, from ``attempt`` back, ended FAILED in a row.

    Counts attempt rows by ``number`` descending (attempts after ``attempt`` are ignored) until
    the first whose outcome is not FAILED. ``session`` defaults to the attempt's own session.
    """
    if session is None:
        session = object_session(attempt)
    if session is None:
        session = get_state().db.session
    model = type(attempt)
    outcomes = session.execute(
        sa.select(model.outcome)
        .where(model.campaign_id == attempt.campaign_id, model.number <= attempt.number)
        .order_by(model.number.desc())
        .limit(STREAK_LOOKBACK)
    ).scalars()
    streak = 0
    for outcome in outcomes:
        if outcome != EmailStatus.FAILED.value:
            break
        streak += 1
    return streak


def events_for(
    campaign: Any,
    attempt: Any,
    status: EmailStatus | str,
    settings: Settings,
    *,
    streak: int | None = None,
) -> list[str]:
    """The admin-webhook events raised by ``attempt`` finishing with campaign ``status``.

    A SENT campaign raises none. The order is fixed: status event, exhaustion, streak.
    ``streak`` is :func:`failed_streak` of ``attempt`` when the caller already has it.
    """
    status = EmailStatus(str(status))
    if status is EmailStatus.SENT:
        return []
    events: list[str] = []
    if status is EmailStatus.FAILED:
        events.append(EVENT_FAILED)
    elif status is EmailStatus.PARTIALLY_SENT:
        events.append(EVENT_PARTIALLY_SENT)
    if fields(campaign).retry_count >= fields(campaign).max_retries:
        events.append(EVENT_RETRIES_EXHAUSTED)
    if streak is None:
        streak = failed_streak(attempt)
    if streak >= settings.admin_webhook_threshold:
        events.append(EVENT_REPEATED_FAILURES)
    return events


def _json_id(value: Any) -> Any:
    return value if isinstance(value, int | str) else str(value)


def build_payload(
    event: str,
    campaign: Any,
    attempt: Any,
    status: EmailStatus | str,
    *,
    event_id: str,
    streak: int,
) -> dict[str, Any]:
    """The JSON-ready body of ``event``: campaign and attempt facts, no secrets."""
    occurred = attempt.ended_at or utcnow()
    return {
        "event": event,
        "event_id": event_id,
        "occurred_at": isoformat_utc(occurred),
        "campaign_id": _json_id(campaign.id),
        "status": str(EmailStatus(str(status))),
        "failure_reason": fields(campaign).failure_reason,
        "failed_at": isoformat_utc(fields(campaign).failed_at),
        "retry_count": fields(campaign).retry_count,
        "max_retries": fields(campaign).max_retries,
        "successful_sends": fields(campaign).successful_sends,
        "total_recipients": fields(campaign).total_recipients,
        "attempt_number": attempt.number,
        "attempt_outcome": attempt.outcome,
        "consecutive_failed_attempts": streak,
        "next_auto_retry_at": isoformat_utc(getattr(fields(campaign), "next_auto_retry_at", None)),
    }


def notify_attempt_finished(
    state: AppState, campaign: Any, attempt: Any, status: EmailStatus | str
) -> list[int]:
    """Queue the admin-webhook events of a finished attempt; return the new delivery ids.

    Call it after the campaign's final status is committed, inside the app context. It never
    raises: configuration, database and Redis errors are logged (without secrets) and the
    caller carries on. With no URL configured it returns at once without any query.
    """
    if not state.settings.admin_webhook_urls:
        return []
    try:
        return _notify(state, campaign, attempt, status)
    except ConfigurationError as exc:
        log.error("admin webhook not sent: invalid configuration: %s", exc)
    except SQLAlchemyError as exc:
        log.error("admin webhook not sent: reading the attempt log failed (%s)", type(exc).__name__)
    except RedisError as exc:
        log.error("admin webhook not sent: Redis is unavailable (%s)", type(exc).__name__)
    except Exception:  # the send must survive any bug in the alert path; logged with traceback
        log.exception("admin webhook not sent: unexpected error")
    return []


def _forget(connection: Any, keys: list[str]) -> None:
    """Undo a half-queued event (its dedupe key and stored deliveries) so it can be queued later."""
    try:
        connection.delete(*keys)
    except RedisError as exc:
        log.warning("admin webhook: a half-queued event was not undone (%s)", type(exc).__name__)


def _notify(state: AppState, campaign: Any, attempt: Any, status: EmailStatus | str) -> list[int]:
    if not has_app_context():
        log.error("admin webhook not sent: notify_attempt_finished needs an app context")
        return []
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    options = load_webhook_options(app.config)
    settings = state.settings
    if EmailStatus(str(status)) is EmailStatus.SENT:
        return []
    streak = failed_streak(attempt)
    raised = events_for(campaign, attempt, status, settings, streak=streak)
    wanted = [event for event in raised if event in options.events]
    if not wanted:
        return []
    backend = state.queue(app)
    connection = backend.connection
    campaign_id = str(campaign.id)
    created: list[int] = []
    for event in wanted:
        event_id = uuid.uuid4().hex
        dedupe = f"{namespace(state)}:dedupe:{campaign_id}:{event}:{attempt.number}"
        if not connection.set(dedupe, event_id, nx=True, ex=DEDUPE_TTL):
            log.info(
                "admin webhook %s for campaign %s attempt %s already queued; not sent again",
                event,
                campaign_id,
                attempt.number,
            )
            continue
        payload = build_payload(event, campaign, attempt, status, event_id=event_id, streak=streak)
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        ids: list[int] = []
        try:
            ids = create_deliveries(
                state,
                connection,
                urls=settings.admin_webhook_urls,
                event=event,
                event_id=event_id,
                campaign_id=campaign_id,
                body=body,
            )
            for delivery_id in ids:
                backend.enqueue(JOB, delivery_id)
        except RedisError:
            _forget(connection, [dedupe, *(record_key(state, i) for i in ids)])
            raise
        created.extend(ids)
        log.info(
            "admin webhook %s for campaign %s attempt %s queued as deliveries %s",
            event,
            campaign_id,
            attempt.number,
            ids,
            extra={
                "campaign_retry": {
                    "event": "admin_webhook_queued",
                    "webhook_event": event,
                    "campaign_id": campaign.id,
                    "attempt_number": attempt.number,
                    "delivery_ids": ids,
                }
            },
        )
    return created
