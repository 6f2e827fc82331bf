"""The snapshot's fast path on PostgreSQL: each batch's rows go in with COPY into a temporary
staging table, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` moves them into the
recipient table, so the unique (campaign, email_key) constraint still drops duplicates.

COPY parses a plain text stream instead of thousands of bound parameters: the write of a
100,000-recipient list costs a fraction of ``INSERT ... VALUES``. Works with psycopg2
(``copy_expert``) and psycopg 3 (``cursor.copy``); with any other driver :func:`copy_writer`
returns None and the caller keeps the portable INSERT.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from flask_campaign_retry.statuses import RecipientStatus

log = logging.getLogger("flask_campaign_retry")

#: The staging table: temporary (this connection only) and dropped at COMMIT; a rollback
#: (a preparation that failed and will run again) undoes its creation.
STAGE = "fcr_snapshot_stage"
_CREATE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} "
    "(email text NOT NULL, email_key text NOT NULL, variables text) ON COMMIT DROP"
)
_COPY = f"COPY {STAGE} (email, email_key, variables) FROM STDIN"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

_stage = sa.table(
    STAGE, sa.column("email", sa.Text), sa.column("email_key", sa.Text), sa.column("variables")
)

_CONSTANT_COLUMNS = ("campaign_id", "incarnation", "status", "submissions", "batch_id")

#: Writes one batch's rows and returns how many were new (not duplicates of earlier rows).
Writer = Callable[[int, Sequence[dict[str, Any]]], int]


def copy_field(value: str | None) -> str:
    """``value`` in COPY's text format: NULL is ``\\N``; backslash, tab, newline and carriage
    return are escaped, everything else (quotes, non-ASCII) goes as it is."""
    return "\\N" if value is None else value.translate(_ESCAPES)


def copy_text(rows: Sequence[dict[str, Any]], serialize: Callable[[Any], str]) -> str:
    """The COPY text of ``rows`` (email, email_key, variables as JSON text), one line each."""
    return "".join(
        f"{copy_field(row['email'])}\t{copy_field(row['email_key'])}\t"
        f"{copy_field(serialize(row['variables']))}\n"
        for row in rows
    )


def _copy_function(driver_connection: Any) -> Callable[[str], None] | None:
    """A function sending a COPY text on this DB-API connection, or None for another driver."""
    cursor = driver_connection.cursor()
    if hasattr(cursor, "copy_expert"):  # psycopg2

        def copy2(text: str) -> None:
            cursor.copy_expert(_COPY, io.StringIO(text))

        return copy2
    if hasattr(cursor, "copy") and hasattr(cursor, "stream"):  # psycopg 3

        def copy3(text: str) -> None:
            with cursor.copy(_COPY) as copy:
                copy.write(text)

        return copy3
    cursor.close()
    return None


def copy_writer(
    session: Session, recipients: sa.Table, campaign_id: Any, incarnation: str | None
) -> Writer | None:
    """A writer of PENDING rows through COPY on the session's own connection and transaction,
    or None when the database is not PostgreSQL or the driver has no COPY."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return None
    dialect = connection.dialect
    send = _copy_function(connection.connection.driver_connection)
    if send is None:
        return None
    # The JSON column's own serializer (None is stored as JSON null, as the INSERT path does).
    serialize: Callable[[Any], str] = getattr(dialect, "_json_serializer", None) or json.dumps
    try:
        with session.begin_nested():  # a refusal must not abort the snapshot's transaction
            session.execute(sa.text(_CREATE))
            session.execute(sa.text(f"TRUNCATE {STAGE}"))
    except sa.exc.ProgrammingError:
        # No TEMPORARY privilege on this database (or a pooler that forbids temp tables):
        # the portable INSERT does the same work, slower.
        log.warning("the snapshot cannot use a temporary table here; using INSERT", exc_info=True)
        return None
    c = recipients.c
    move = (
        postgresql.insert(recipients)
        .from_select(
            [*_CONSTANT_COLUMNS, "email", "email_key", "variables"],
            sa.select(
                sa.literal(campaign_id, c.campaign_id.type),
                sa.literal(incarnation, c.incarnation.type),
                sa.literal(RecipientStatus.PENDING, c.status.type),
                sa.literal(0, sa.Integer),
                sa.bindparam("batch_id", type_=c.batch_id.type),
                _stage.c.email,
                _stage.c.email_key,
                sa.cast(_stage.c.variables, c.variables.type),
            ),
        )
        .on_conflict_do_nothing()
    )
    # The count comes back as a row: a DML's rowcount is -1 on psycopg 3 here.
    moved = move.returning(sa.literal(1)).cte("moved")
    count_moved = sa.select(sa.func.count()).select_from(moved)
    empty = sa.text(f"TRUNCATE {STAGE}")
    dbapi_error = dialect.loaded_dbapi.Error

    def write(batch_id: int, rows: Sequence[dict[str, Any]]) -> int:
        text = copy_text(rows, serialize)
        try:
            send(text)
        except dbapi_error as exc:  # wrapped as SQLAlchemy would: OperationalError is transient
            raise sa.exc.DBAPIError.instance(_COPY, None, exc, dbapi_error) from exc
        inserted = session.execute(count_moved, {"batch_id": batch_id}).scalar_one()
        session.execute(empty)
        return int(inserted)

    return write
