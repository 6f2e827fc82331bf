"""Freeze a campaign's recipient list at its first send, split into batches, in bulk."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.campaign_fields import fields
from flask_campaign_retry.engine.addresses import address_problem
from flask_campaign_retry.engine.batch_rows import insert_batch
from flask_campaign_retry.engine.recipients import dedupe_key, iter_recipients, storable_address
from flask_campaign_retry.engine.snapshot_copy import Writer, copy_writer
from flask_campaign_retry.errors import CampaignRetryError
from flask_campaign_retry.sql import chunked, insert_ignoring_duplicates
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import FailureKind, RecipientStatus


class LoaderFailed(CampaignRetryError):
    """The host's recipients_loader raised (the cause is chained): not the extension's write."""


def _loaded(loader: Callable[[Any], Iterable[Any]], campaign: Any) -> Iterator[Any]:
    """The loader's items; whatever the loader itself raises comes out as :class:`LoaderFailed`,
    so a failing INSERT of ours is never blamed on the host's loader (or the other way round)."""
    try:
        items = iter(loader(campaign))
    except Exception as exc:
        raise LoaderFailed(f"the recipients_loader raised {type(exc).__name__}") from exc
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as exc:
            raise LoaderFailed(f"the recipients_loader raised {type(exc).__name__}") from exc
        yield item


def recipient_row(
    campaign_id: Any, incarnation: str | None, email: str, variables: Any, casefold: bool
) -> dict[str, Any]:
    """The row of one loaded recipient: PENDING, or FAILED permanent when the address is invalid
    (stored in a form every database takes, so it never breaks the other rows' INSERT)."""
    problem = address_problem(email)
    if problem is None:
        return {
            "campaign_id": campaign_id,
            "email": email,
            "email_key": dedupe_key(email, casefold),
            "incarnation": incarnation,
            "variables": variables or None,
            "status": RecipientStatus.PENDING,
            "failure_kind": None,
            "error_message": None,
        }
    stored = storable_address(email)
    return {
        "campaign_id": campaign_id,
        "email": stored,
        "email_key": dedupe_key(stored, casefold),
        "incarnation": incarnation,
        "variables": None,
        "status": RecipientStatus.FAILED,
        "failure_kind": FailureKind.PERMANENT.value,
        "error_message": storable_address(problem)[:200],
    }


def snapshot_recipients(state: AppState, campaign: Any, attempt: Any) -> int:
    """Insert the recipient rows and batches of ``attempt`` (the first) and return the count.

    The host's loader is consumed lazily, one batch at a time: memory stays flat however long
    the list. Duplicates (same case-folded address by default) are dropped, inside a chunk here
    and across chunks by the unique constraint; each batch's ``size`` is the number of rows it
    really got. Invalid addresses get a FAILED row outside any batch. Runs inside the caller's
    transaction, so a crash half way leaves nothing behind.
    """
    loader = state.extension.hooks.recipients_loader
    assert loader is not None  # checked by CampaignRetry.send before anything was written
    session = state.db.session
    recipients = state.models.recipient.__table__
    batches = state.models.batch.__table__
    campaign_id = campaign.id
    incarnation = fields(campaign).retry_incarnation
    write_invalid = _insert_writer(state)
    # COPY on PostgreSQL (psycopg2 or psycopg 3), the portable INSERT everywhere else.
    write_pending: Writer = copy_writer(session, recipients, campaign_id, incarnation) or (
        write_invalid
    )
    casefold = state.settings.casefold_dedupe
    seq = 0
    for chunk in chunked(iter_recipients(_loaded(loader, campaign)), state.settings.batch_size):
        rows: dict[str, dict[str, Any]] = {}
        for email, variables in chunk:
            row = recipient_row(campaign_id, incarnation, email, variables, casefold)
            rows.setdefault(row["email_key"], row)  # the first of duplicates wins, as across chunks
        sendable = [row for row in rows.values() if row["status"] is RecipientStatus.PENDING]
        invalid = [row for row in rows.values() if row["status"] is not RecipientStatus.PENDING]
        if invalid:
            write_invalid(None, invalid)
        if not sendable:
            continue
        batch_id = insert_batch(state, campaign_id, attempt.id, seq, len(sendable))
        inserted = write_pending(batch_id, sendable)
        if inserted == 0:
            session.execute(sa.delete(batches).where(batches.c.id == batch_id))
            continue
        if inserted != len(sendable):
            session.execute(
                sa.update(batches).where(batches.c.id == batch_id).values(size=inserted)
            )
        seq += 1
    total: int = session.execute(
        sa.select(sa.func.count())
        .select_from(recipients)
        .where(recipients.c.campaign_id == campaign_id)
    ).scalar_one()
    attempt.batches_total = seq
    attempt.targeted = total
    fields(campaign).total_recipients = total
    return total


def _insert_writer(state: AppState) -> Callable[[int | None, Sequence[dict[str, Any]]], int]:
    """The portable writer: multi-row ``INSERT`` ignoring duplicates; returns the rows it added
    (``batch_id`` None for the FAILED rows of invalid addresses, outside any batch)."""
    session = state.db.session
    recipients = state.models.recipient.__table__
    dialect = session.get_bind().dialect.name
    insert = insert_ignoring_duplicates(recipients, dialect)
    returning = dialect in {"postgresql", "sqlite"}
    if returning:
        # With RETURNING, SQLAlchemy sends each chunk as multi-row INSERTs (insertmanyvalues)
        # instead of the driver's executemany, a round trip per row on psycopg2.
        insert = insert.returning(recipients.c.id)

    def write(batch_id: int | None, rows: Sequence[dict[str, Any]]) -> int:
        result = session.execute(insert, [{**row, "batch_id": batch_id} for row in rows])
        if returning:
            return len(result.all())
        if batch_id is None:
            return len(rows)
        return _count_in_batch(state, batch_id)

    return write


def _count_in_batch(state: AppState, batch_id: int) -> int:
    recipients = state.models.recipient.__table__
    return int(
        state.db.session.execute(
            sa.select(sa.func.count())
            .select_from(recipients)
            .where(recipients.c.batch_id == batch_id)
        ).scalar_one()
    )
