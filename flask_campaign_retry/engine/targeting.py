"""Put the recipients a retry (or a pre-filled clone) targets into new batches."""

from __future__ import annotations

from collections.abc import Iterator
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

    One INSERT and one UPDATE per batch: a million-row campaign with 1% failed touches ten
    thousand rows, not a million. The retryable ids are read in one ordered pass (PostgreSQL:
    one SELECT streamed through a server-side cursor, whose snapshot the UPDATEs do not
    disturb). A keyset page per batch would scan the retryable set again for every page, and
    right after a big send the ``(campaign_id, status)`` index still holds every recipient's
    dead PENDING version, so each page cost a scan of the whole campaign. Elsewhere (SQLite),
    keyset pages by id, 1,000 at a time.
    """
    seq = 0
    total = 0
    for ids in _retryable_ids(state, campaign.id, attempt.include_uncertain):
        _assign(state, campaign.id, attempt.id, seq, ids)
        seq += 1
        total += len(ids)
    attempt.batches_total = seq
    attempt.targeted = total
    return total


def _retryable_ids(
    state: AppState, campaign_id: Any, include_uncertain: bool
) -> Iterator[list[int]]:
    """The retryable recipients' ids in id order, a batch at a time."""
    session = state.db.session
    recipients = state.models.recipient.__table__
    r = recipients.c
    condition = retryable_condition(recipients, campaign_id, include_uncertain)
    size = state.settings.batch_size
    if session.get_bind().dialect.name == "postgresql":
        result = session.execute(
            sa.select(r.id).where(condition).order_by(r.id).execution_options(yield_per=size)
        )
        for part in result.scalars().partitions(size):
            yield [int(i) for i in part]
        return
    last_id = 0
    while ids := [
        int(i)
        for i in session.execute(
            sa.select(r.id).where(condition, r.id > last_id).order_by(r.id).limit(size)
        ).scalars()
    ]:
        yield ids
        last_id = ids[-1]


def _assign(state: AppState, campaign_id: Any, attempt_id: int, seq: int, ids: list[int]) -> None:
    recipients = state.models.recipient.__table__
    batch_id = insert_batch(state, campaign_id, attempt_id, seq, len(ids))
    state.db.session.execute(
        sa.update(recipients)
        .where(recipients.c.id.in_(ids))
        .values(batch_id=batch_id, status=RecipientStatus.PENDING)
    )
