"""Create batch rows (shared by the first send's snapshot and by retry targeting)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import BatchStatus


def insert_batch(state: AppState, campaign_id: Any, attempt_id: int, seq: int, size: int) -> int:
    """Insert a QUEUED batch of ``attempt_id`` and return its id (one statement)."""
    batches = state.models.batch.__table__
    batch_id = state.db.session.execute(
        sa.insert(batches)
        .values(
            campaign_id=campaign_id,
            attempt_id=attempt_id,
            seq=seq,
            size=size,
            status=BatchStatus.QUEUED,
        )
        .returning(batches.c.id)
    ).scalar_one()
    return int(batch_id)
