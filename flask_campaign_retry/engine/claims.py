"""Claim a batch and take its recipients: a named batch (the job's own) or the next due batch
of an attempt (a job that keeps going after its batch, see :mod:`engine.chain`).

Taking recipients writes nothing: a PENDING recipient of a batch that is SENDING under a live
claim is in flight (``IN_FLIGHT``), so each recipient row is written once per send, with its
outcome (:mod:`engine.outcomes`), or by the lease sweep if the worker dies
(:mod:`recovery.sweep`). Reports show such rows as SENDING (:mod:`web.report`).

On PostgreSQL the claim and the take are one statement: a data-modifying CTE claims the batch
(``FOR UPDATE SKIP LOCKED``, so a racing worker moves on at once) and the recipient SELECT
joins it, so recipients come back only if this claim won. Elsewhere (SQLite) they are two
statements in one transaction, the claim's row count being the claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.providers.base import BatchRecipient
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import BatchStatus, RecipientStatus

CLAIMABLE = (BatchStatus.QUEUED,)
#: Stored statuses of a claimed batch's recipients that are in flight: PENDING (taken by the
#: claim, written once with the outcome) and SENDING (rows claimed by a release before 0.2.0).
IN_FLIGHT = (RecipientStatus.PENDING, RecipientStatus.SENDING)


@dataclass
class Claim:
    """A batch this worker now holds (SENDING under ``token``) and the recipients it took."""

    batch_id: int
    campaign_id: Any
    attempt_id: int
    #: Claims of the batch so far, this one included.
    tries: int
    #: The attempt's frozen message (read in the claim statement: no extra query per batch).
    message: dict[str, Any] | None
    recipients: list[BatchRecipient] = field(default_factory=list)


def claimable(state: AppState, now: datetime) -> sa.ColumnElement[bool]:
    """QUEUED, due, and its attempt neither halted nor paused."""
    b = state.models.batch.__table__.c
    a = state.models.attempt.__table__.c
    attempt_open = sa.exists().where(
        a.id == b.attempt_id,
        a.halt_reason.is_(None),
        sa.or_(a.paused_until.is_(None), a.paused_until <= now),
    )
    due = sa.or_(b.next_try_at.is_(None), b.next_try_at <= now)
    return sa.and_(b.status.in_(CLAIMABLE), due, attempt_open)


def _target(
    state: AppState, dialect: str, now: datetime, batch_id: int | None, attempt_id: int | None
) -> sa.ColumnElement[bool]:
    """WHERE of the claim: the named batch, or the first due batch (by seq) of the attempt."""
    batches = state.models.batch.__table__
    b = batches.c
    condition = claimable(state, now)
    if batch_id is not None:
        condition = sa.and_(b.id == batch_id, condition)
        first = sa.select(b.id).where(condition)
    else:
        condition = sa.and_(b.attempt_id == attempt_id, condition)
        first = sa.select(b.id).where(condition).order_by(b.seq).limit(1)
    if dialect == "postgresql":
        first = first.with_for_update(skip_locked=True)
    elif batch_id is not None:
        return condition
    # The outer UPDATE re-checks the condition: without row locks (SQLite) that is the claim.
    return sa.and_(b.id == first.scalar_subquery(), condition)


def _claim_update(
    state: AppState, token: str, now: datetime, where: sa.ColumnElement[bool]
) -> sa.Update:
    batches = state.models.batch.__table__
    attempts = state.models.attempt.__table__
    b = batches.c
    return (
        sa.update(batches)
        .where(where)
        .values(
            status=BatchStatus.SENDING,
            claim_token=token,
            lease_until=now + timedelta(seconds=state.settings.lease_seconds),
            tries=b.tries + 1,
        )
        .returning(
            b.id,
            b.campaign_id,
            b.attempt_id,
            b.tries,
            sa.select(attempts.c.message)
            .where(attempts.c.id == b.attempt_id)
            .scalar_subquery()
            .label("message"),
        )
    )


def _recipients(rows: list[tuple[Any, Any, Any]]) -> list[BatchRecipient]:
    taken = sorted(rows, key=lambda row: int(row[0]))
    return [BatchRecipient(int(rid), email, variables or {}) for rid, email, variables in taken]


def claim_and_take(
    state: AppState, token: str, *, batch_id: int | None = None, attempt_id: int | None = None
) -> Claim | None:
    """Claim ``batch_id`` (or the next due batch of ``attempt_id``) under ``token`` and read
    its PENDING recipients (they stay PENDING: in flight while the claim holds); None when
    nothing could be claimed. The caller commits.

    A recipient row must also name the batch's campaign: a row of a deleted campaign may still
    name a batch id the database reused.
    """
    session = state.db.session
    dialect = session.get_bind().dialect.name
    now = utcnow()
    claim = _claim_update(state, token, now, _target(state, dialect, now, batch_id, attempt_id))
    if dialect == "postgresql":
        return _claim_and_take_in_one(state, claim)
    row = session.execute(claim).first()
    if row is None:
        return None
    found = Claim(int(row[0]), row[1], int(row[2]), int(row[3]), row[4])
    r = state.models.recipient.__table__.c
    taken = session.execute(
        sa.select(r.id, r.email, r.variables).where(
            r.batch_id == found.batch_id,
            r.status == RecipientStatus.PENDING,
            r.campaign_id == found.campaign_id,
        )
    ).all()
    found.recipients = _recipients([tuple(t) for t in taken])
    return found


def _claim_and_take_in_one(state: AppState, claim: sa.Update) -> Claim | None:
    """PostgreSQL: ``WITH claimed AS (UPDATE batch … RETURNING …) SELECT`` the claimed row and
    the recipients joined to it (one statement, one round trip)."""
    recipients = state.models.recipient.__table__
    r = recipients.c
    claimed = claim.cte("claimed")
    taken = (
        sa.select(r.id, r.email, r.variables)
        .join(claimed, sa.and_(r.batch_id == claimed.c.id, r.campaign_id == claimed.c.campaign_id))
        .where(r.status == RecipientStatus.PENDING)
        .subquery("taken")
    )
    # One row for the claim (recipient columns NULL), one per taken recipient (claim columns
    # NULL): the message is read once, not once per recipient.
    null_int = sa.cast(sa.null(), sa.Integer)
    statement = sa.union_all(
        sa.select(
            claimed.c.id,
            claimed.c.campaign_id,
            claimed.c.attempt_id,
            claimed.c.tries,
            claimed.c.message,
            null_int.label("rid"),
            sa.cast(sa.null(), r.email.type).label("email"),
            sa.cast(sa.null(), r.variables.type).label("variables"),
        ),
        sa.select(
            null_int,
            sa.cast(sa.null(), claimed.c.campaign_id.type),
            null_int,
            null_int,
            sa.cast(sa.null(), claimed.c.message.type),
            taken.c.id,
            taken.c.email,
            taken.c.variables,
        ),
    )
    found: Claim | None = None
    rows: list[tuple[Any, Any, Any]] = []
    for row in state.db.session.execute(statement).all():
        if row[0] is not None:
            found = Claim(int(row[0]), row[1], int(row[2]), int(row[3]), row[4])
        else:
            rows.append((row[5], row[6], row[7]))
    if found is not None:
        found.recipients = _recipients(rows)
    return found
