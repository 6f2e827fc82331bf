"""Which of the extension's rows belong to a campaign row, and which a deleted one left behind.

A database may give a new campaign the id of a deleted one (SQLite reuses ids) while the deleted
campaign's attempts, batches and frozen recipients are still there (SQLite enforces ON DELETE
CASCADE only with its foreign-key pragma; a host may also delete with raw SQL). Each campaign row
therefore carries a random ``retry_incarnation`` that its attempts and recipient rows copy. When
a campaign is first sent, every row of its id with another incarnation is stale and is deleted
before anything is read or written for it: a first send reaches only the list its own loader
produces, or the list a clone pre-filled for this very row.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.campaign_fields import column_values, columns, fields
from flask_campaign_retry.mixins import new_incarnation
from flask_campaign_retry.state import AppState

log = logging.getLogger("flask_campaign_retry")


def ensure_incarnation(state: AppState, campaign: Any) -> str:
    """The campaign row's incarnation, given one first if it has none (a row inserted with raw
    SQL, or created before the column existed)."""
    current: str | None = fields(campaign).retry_incarnation
    if current is not None:
        return current
    campaigns = state.models.campaign.__table__
    (key,) = campaigns.primary_key.columns
    state.db.session.execute(
        sa.update(campaigns)
        .where(key == campaign.id, columns(campaigns).retry_incarnation.is_(None))
        .values(column_values(campaigns, retry_incarnation=new_incarnation()))
    )
    value: str = state.db.session.execute(
        sa.select(columns(campaigns).retry_incarnation).where(key == campaign.id)
    ).scalar_one()
    fields(campaign).retry_incarnation = value
    return value


def discard_stale_rows(
    state: AppState, campaign_id: Any, incarnation: str, *, recipients_only: bool = False
) -> int:
    """Delete the rows of ``campaign_id`` that belong to another incarnation (in the caller's
    transaction); return how many recipient rows went. ``recipients_only`` leaves attempts and
    batches alone (the preparation job, whose own attempt row is being worked on)."""
    session = state.db.session
    models = state.models
    recipients = models.recipient.__table__
    batches = models.batch.__table__
    attempts = models.attempt.__table__
    stale_recipients = session.execute(
        sa.delete(recipients).where(
            recipients.c.campaign_id == campaign_id,
            recipients.c.incarnation.is_distinct_from(incarnation),
        )
    ).rowcount
    if recipients_only:
        if stale_recipients:
            log.warning(
                "campaign %s: discarded %d stale recipient rows", campaign_id, stale_recipients
            )
        return int(stale_recipients)
    own_attempt = sa.exists().where(
        attempts.c.id == batches.c.attempt_id, attempts.c.incarnation == incarnation
    )
    session.execute(sa.delete(batches).where(batches.c.campaign_id == campaign_id, ~own_attempt))
    stale_attempts = session.execute(
        sa.delete(attempts).where(
            attempts.c.campaign_id == campaign_id,
            attempts.c.incarnation.is_distinct_from(incarnation),
        )
    ).rowcount
    if stale_recipients or stale_attempts:
        log.warning(
            "campaign %s: discarded %d recipient rows and %d attempts left by a deleted campaign "
            "with the same id",
            campaign_id,
            stale_recipients,
            stale_attempts,
        )
    return int(stale_recipients)
