"""Freeze a campaign's recipient list at its first send, split into batches, in bulk."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.engine.batch_rows import insert_batch
from flask_campaign_retry.engine.recipients import iter_recipients
from flask_campaign_retry.sql import chunked, insert_ignoring_duplicates
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import RecipientStatus


def snapshot_recipients(state: AppState, campaign: Any, attempt: Any) -> int:
    """Insert the recipient rows and batches of ``attempt`` (the first) and return the count.

    The host's loader is consumed lazily, one batch at a time: memory stays flat however long
    the list. Duplicate addresses are dropped by the unique constraint. Runs inside the caller's
    transaction, so a crash half way leaves nothing behind.
    """
    loader = state.extension.hooks.recipients_loader
    assert loader is not None  # checked by CampaignRetry.send before anything was written
    session = state.db.session
    dialect = session.get_bind().dialect.name
    recipients = state.models.recipient.__table__
    insert_recipients = insert_ignoring_duplicates(recipients, dialect)
    if dialect in {"postgresql", "sqlite"}:
        # With RETURNING, SQLAlchemy sends each chunk as multi-row INSERTs (insertmanyvalues)
        # instead of the driver's executemany, a round trip per row on psycopg2.
        insert_recipients = insert_recipients.returning(recipients.c.id)
    seq = 0
    for chunk in chunked(iter_recipients(loader(campaign)), state.settings.batch_size):
        unique = dict(chunk)  # drops duplicates inside the chunk, keeps the last variables
        batch_id = insert_batch(state, campaign.id, attempt.id, seq, len(unique))
        session.execute(
            insert_recipients,
            [
                {
                    "campaign_id": campaign.id,
                    "email": email,
                    "variables": variables or None,
                    "status": RecipientStatus.PENDING,
                    "batch_id": batch_id,
                }
                for email, variables in unique.items()
            ],
        )
        seq += 1
    total: int = session.execute(
        sa.select(sa.func.count())
        .select_from(recipients)
        .where(recipients.c.campaign_id == campaign.id)
    ).scalar_one()
    attempt.batches_total = seq
    attempt.targeted = total
    campaign.total_recipients = total
    return total
