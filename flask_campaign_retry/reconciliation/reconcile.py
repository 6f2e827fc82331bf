"""Settle UNCERTAIN recipients from the provider's event log, without sending anything.

A recipient is UNCERTAIN when its batch was in flight as a read timed out or a worker died: the
provider may or may not have the mail, so resending could deliver it twice. Here the provider
(:class:`~.providers.base.ReconcilingProvider`, e.g. Mailgun's Events API filtered by our ``v:``
variables) is asked what became of each one:

=====================================  ===================================================
provider says                          recipient becomes
=====================================  ===================================================
accepted / failed temporarily          SENT (``provider_message_id`` set)
delivered                              DELIVERED (the campaign's ``delivered_count`` + 1)
failed permanently (or gave up "old")  FAILED, kind ``permanent``
never seen, and the send is older      FAILED, kind ``transient``: a retry resends it
than ``settle_seconds``
never seen, send too recent            stays UNCERTAIN (the event may not be logged yet)
the lookup failed                      stays UNCERTAIN
=====================================  ===================================================

"Never seen" counts only when the lookup completed, the batch's last possible send (the latest
of its creation, lease end and settle time) is at least ``settle_seconds`` old (Mailgun
recommends treating its event log as complete only after about 30 minutes, hence the default),
*and* the batch is younger than :data:`EVENT_RETENTION` (older events may have been deleted, so
their absence proves nothing).

Rows are written with a few statements per batch (grouped by outcome), each conditional on the
row still being UNCERTAIN, so a webhook that got there first is never overwritten. Nothing is
sent and no campaign status is changed: a caller that reconciles a finished campaign refreshes
its status and ``successful_sends`` itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from flask_campaign_retry.clock import as_naive_utc, utcnow
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.base import (
    BatchRecipient,
    BatchRef,
    ProviderError,
    ReconcilingProvider,
)
from flask_campaign_retry.reconciliation.dirty import request_refresh
from flask_campaign_retry.reconciliation.rows import (
    ABSENT_MESSAGE,
    COUNT_KEYS,
    ReconcileCounts,
    empty_counts,
    write_findings,
)
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import RecipientStatus

__all__ = [
    "ABSENT_MESSAGE",
    "CLOCK_MARGIN",
    "COUNT_KEYS",
    "DEFAULT_SETTLE_SECONDS",
    "EVENT_RETENTION",
    "SETTLE_CONFIG",
    "ReconcileCounts",
    "reconcile_batches",
    "reconcile_due",
    "reconcile_uncertain",
    "settle_seconds_from_config",
]

log = logging.getLogger("flask_campaign_retry")

SETTLE_CONFIG: Final = "CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS: Final = 1800.0
#: The lookup starts this long before the batch was created (clocks of hosts differ).
CLOCK_MARGIN: Final = timedelta(minutes=5)
#: Mailgun keeps events for at least 3 days: after that, not finding one proves nothing.
EVENT_RETENTION: Final = timedelta(days=3)


def settle_seconds_from_config(config: Any) -> float:
    """``CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS`` (number >= 0 or timedelta; default 1800)."""
    value = config.get(SETTLE_CONFIG, DEFAULT_SETTLE_SECONDS)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigurationError(
            f"{SETTLE_CONFIG} must be a number of seconds >= 0 (default 1800), got {value!r}."
        )
    return float(value)


def reconcile_uncertain(
    state: AppState,
    campaign_id: Any,
    *,
    settle_seconds: float | None = None,
    now: datetime | None = None,
) -> ReconcileCounts:
    """Reconcile every UNCERTAIN recipient of one campaign, batch by batch.

    Call it before offering a manual retry. ``settle_seconds`` defaults to the app's
    ``CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS``; ``now`` (naive UTC) is for tests.
    """
    r = state.models.recipient.__table__.c
    batch_ids = list(
        state.db.session.execute(
            sa.select(r.batch_id)
            .where(
                r.campaign_id == campaign_id,
                r.status == RecipientStatus.UNCERTAIN,
                r.batch_id.isnot(None),
            )
            .distinct()
            .order_by(r.batch_id)
        ).scalars()
    )
    state.db.session.rollback()
    return reconcile_batches(state, batch_ids, settle_seconds=settle_seconds, now=now)


def reconcile_due(
    state: AppState,
    *,
    settle_seconds: float | None = None,
    now: datetime | None = None,
    limit: int = 100,
) -> ReconcileCounts:
    """Reconcile batches whose UNCERTAIN recipients can now be settled: for a recovery sweep
    that runs on a schedule.

    Picks at most ``limit`` batches that still hold UNCERTAIN recipients, were settled at
    least ``settle_seconds`` ago and are younger than :data:`EVENT_RETENTION`, oldest first.
    A batch whose lookup fails is simply picked again by a later sweep.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settle = settle_seconds_from_config(app.config) if settle_seconds is None else settle_seconds
    moment = as_naive_utc(now) if now is not None else utcnow()
    if not isinstance(state.provider(app), ReconcilingProvider):
        return empty_counts()
    batches = state.models.batch.__table__
    recipients = state.models.recipient.__table__
    b, r = batches.c, recipients.c
    due = list(
        state.db.session.execute(
            sa.select(b.id)
            .where(
                b.settled_at <= moment - timedelta(seconds=settle),
                b.created_at > moment - EVENT_RETENTION,
                sa.exists().where(r.batch_id == b.id, r.status == RecipientStatus.UNCERTAIN),
            )
            .order_by(b.settled_at, b.id)
            .limit(limit)
        ).scalars()
    )
    state.db.session.rollback()
    return reconcile_batches(state, due, settle_seconds=settle, now=moment)


def reconcile_batches(
    state: AppState,
    batch_ids: Iterable[int],
    *,
    settle_seconds: float | None = None,
    now: datetime | None = None,
) -> ReconcileCounts:
    """Reconcile the UNCERTAIN recipients of each batch in ``batch_ids`` (see module doc).

    Each batch is looked up with no transaction open and written in its own transaction; a
    failed lookup leaves that batch as it was and the others are still done. Needs an app
    context (the provider is the app's).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settle = settle_seconds_from_config(app.config) if settle_seconds is None else settle_seconds
    moment = as_naive_utc(now) if now is not None else utcnow()
    provider = state.provider(app)
    counts = empty_counts()
    for batch_id in batch_ids:
        _reconcile_batch(state, provider, int(batch_id), settle, moment, counts)
    if counts["batches"]:
        log.info("reconciled %d batches: %s", counts["batches"], counts)
    return counts


def _reconcile_batch(
    state: AppState,
    provider: Any,
    batch_id: int,
    settle: float,
    now: datetime,
    counts: ReconcileCounts,
) -> None:
    session = state.db.session
    b = state.models.batch.__table__.c
    r = state.models.recipient.__table__.c
    batch = session.execute(
        sa.select(b.campaign_id, b.attempt_id, b.created_at, b.lease_until, b.settled_at).where(
            b.id == batch_id
        )
    ).first()
    rows = session.execute(
        sa.select(r.id, r.email)
        .where(r.batch_id == batch_id, r.status == RecipientStatus.UNCERTAIN)
        .order_by(r.id)
    ).all()
    session.rollback()  # no transaction stays open during the provider call
    if batch is None or not rows:
        return
    counts["examined"] += len(rows)
    if not isinstance(provider, ReconcilingProvider):
        counts["unsupported"] += 1
        counts["still_uncertain"] += len(rows)
        return
    counts["batches"] += 1
    ref = BatchRef(campaign_id=batch.campaign_id, attempt_id=batch.attempt_id, batch_id=batch_id)
    recipients = [BatchRecipient(int(rid), str(email)) for rid, email in rows]
    try:
        found = provider.lookup_batch(ref, recipients, batch.created_at - CLOCK_MARGIN)
    except ProviderError as exc:
        log.warning("event lookup of batch %s failed, it stays uncertain: %s", batch_id, exc)
        counts["lookup_failed"] += 1
        counts["still_uncertain"] += len(rows)
        return
    last_send = max(t for t in (batch.created_at, batch.lease_until, batch.settled_at) if t)
    settled = (now - last_send).total_seconds() >= settle
    settled = settled and now - batch.created_at < EVENT_RETENTION
    write_findings(state, batch.campaign_id, [rid for rid, _ in rows], found, settled, counts)
    session.commit()
    _mark_changed(state, batch.campaign_id)


def _mark_changed(state: AppState, campaign_id: Any) -> None:
    """Have the campaign recounted (coalesced); the recovery sweep recounts if Redis is down."""
    try:
        request_refresh(state, campaign_id)
    except RedisError as exc:
        log.warning("campaign %s: refresh not queued (%s)", campaign_id, type(exc).__name__)
