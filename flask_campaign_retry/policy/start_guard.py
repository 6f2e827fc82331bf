"""Queue an attempt's preparation, or undo the start: a send or retry clicked while Redis is
unreachable changes nothing.

``start_send`` and ``start_retry`` commit the campaign's move to SENDING and the attempt row
first (a worker must see them when the job runs), then queue the job under its deterministic
id. When Redis refuses, the campaign gets its previous values back with one conditional
UPDATE (only if it is still SENDING for this very attempt), the unprepared attempt row is
deleted, and :class:`QueueUnavailable` tells the caller to try again. Should the job have
reached Redis after all (the answer was lost), it finds no attempt and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from flask_campaign_retry.campaign_fields import column_values, columns
from flask_campaign_retry.errors import QueueUnavailable
from flask_campaign_retry.queue.job_ids import prepare_job_id
from flask_campaign_retry.queue.names import PREPARE_JOB
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import EmailStatus

log = logging.getLogger("flask_campaign_retry")


def enqueue_preparation_or_undo(
    state: AppState, campaign: Any, attempt: Any, restore: Mapping[str, Any]
) -> None:
    """Queue ``attempt``'s preparation; on a Redis error restore ``restore`` (column values
    the start overwrote) on the campaign, delete the attempt and raise QueueUnavailable."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        backend = state.queue(app)
        backend.ensure(
            PREPARE_JOB, attempt.id, job_id=prepare_job_id(state.settings.queue_name, attempt.id)
        )
    except RedisError as exc:
        log.error(
            "campaign %s: the queue is unreachable (%s); the start is undone",
            campaign.id,
            type(exc).__name__,
        )
        _undo(state, campaign, attempt.id, restore)
        raise QueueUnavailable(type(exc).__name__) from None


def _undo(state: AppState, campaign: Any, attempt_id: int, restore: Mapping[str, Any]) -> None:
    session = state.db.session
    session.rollback()
    campaigns = state.models.campaign.__table__
    attempts = state.models.attempt.__table__
    c = columns(campaigns)
    session.execute(
        sa.update(campaigns)
        .where(
            c.id == campaign.id,
            c.current_attempt_id == attempt_id,
            c.status == EmailStatus.SENDING,
        )
        .values(column_values(campaigns, **restore))
    )
    session.execute(
        sa.delete(attempts).where(attempts.c.id == attempt_id, attempts.c.prepared.is_(False))
    )
    session.commit()
    session.refresh(campaign)


def previous_values(state: AppState, campaign_id: Any, *names: str) -> dict[str, Any]:
    """The campaign's current values of ``names`` (read before a start overwrites them)."""
    c = columns(state.models.campaign.__table__)
    row = state.db.session.execute(
        sa.select(*(getattr(c, name) for name in names)).where(c.id == campaign_id)
    ).one()
    return dict(zip(names, row, strict=True))
