"""Put the recipients a retry (or a pre-filled clone) targets into new batches."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.engine.batch_rows import insert_batch
from flask_campaign_retry.policy.eligibility import retryable_condition
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import RecipientStatus


def has_recipient_rows(state: AppState, campaign_id: Any) -> bool:
    """True once the campaign's recipient list has been frozen (or pre-filled by a clone)."""
    recipients = state.models.recipient.__table__
    return bool(
        state.db.session.execute(
            sa.select(sa.literal(1)).where(recipients.c.campaign_id == campaign_id).limit(1)
        ).first()
    )


def target_recipients(state: AppState, campaign: Any, attempt: Any) -> int:
    """Assign every retryable recipient to a new batch of ``attempt``; return how many.

    Keyset-paginated by id, one INSERT and one UPDATE per batch: a million-row campaign with
    1% failed touches ten thousand rows, not a million.
    """
    session = state.db.session
    recipients = state.models.recipient.__table__
    r = recipients.c
    condition = retryable_condition(recipients, campaign.id, attempt.include_uncertain)
    last_id = 0
    seq = 0
    total = 0
    while True:
        ids = list(
            session.execute(
                sa.select(r.id)
                .where(condition, r.id > last_id)
                .order_by(r.id)
                .limit(state.settings.batch_size)
            ).scalars()
        )
        if not ids:
            break
        batch_id = insert_batch(state, campaign.id, attempt.id, seq, len(ids))
        session.execute(
            sa.update(recipients)
            .where(r.id.in_(ids))
            .values(batch_id=batch_id, status=RecipientStatus.PENDING)
        )
        last_id = ids[-1]
        seq += 1
        total += len(ids)
    attempt.batches_total = seq
    attempt.targeted = total
    return total
