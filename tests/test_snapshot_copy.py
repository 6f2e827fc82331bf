"""The snapshot's COPY path on PostgreSQL keeps every guarantee of the portable INSERT: duplicates
dropped on the case-folded key (inside a batch and across batches), each campaign's rows its own,
the incarnation marker, invalid addresses FAILED outside any batch, text with tabs, backslashes,
quotes, newlines and non-ASCII stored exactly, and a passing fault retried. The same tests run on
SQLite (the portable path) and on PostgreSQL with the COPY path switched off, so both paths are
held to the same rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_campaign_retry import EmailStatus, FailureKind, RecipientStatus
from flask_campaign_retry.engine import snapshot, snapshot_copy
from flask_campaign_retry.hooks import Hooks
from flask_campaign_retry.queue.worker import make_worker
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import batches, drain, reload

NAMES = [
    "tab\there",
    "back\\slash \\N \\t",
    "quotes ' \" `",
    "new\nline and\r\nCRLF",
    "Zoë Ångström 名前 🙂",
    "",
]


@pytest.fixture(params=["copy", "copy-psycopg3", "portable"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """On PostgreSQL, the COPY path (asserted used) with psycopg2 and with psycopg 3, and the
    portable INSERT with COPY off."""
    if request.param == "copy-psycopg3":
        pytest.importorskip("psycopg")
    if request.param == "portable":
        monkeypatch.setattr(snapshot, "copy_writer", lambda *args: None)
    return str(request.param)


def _audience() -> list[dict[str, Any]]:
    """Four batches of 3: duplicates in case inside a batch and across batches, an invalid
    address, names with every character COPY's text format escapes."""
    items: list[dict[str, Any]] = [
        {"email": "a@example.com", "variables": {"first_name": NAMES[0]}},
        {"email": "A@EXAMPLE.COM", "variables": {"first_name": "dup in batch"}},
        {"email": "b@example.com", "variables": {"first_name": NAMES[1]}},
        {"email": "not an address", "variables": {"first_name": "bad"}},
        {"email": "c@example.com", "variables": {"first_name": NAMES[2]}},
        {"email": "B@Example.com", "variables": {"first_name": "dup across"}},
        {"email": "d@example.com", "variables": {"first_name": NAMES[3]}},
        {"email": "e@example.com", "variables": {"first_name": NAMES[4], "n": [1, None]}},
        {"email": "f@example.com", "variables": None},
        {"email": "o'brien@example.com", "variables": {"first_name": NAMES[5]}},
        {"email": "C@EXAMPLE.com", "variables": {"first_name": "dup across"}},
    ]
    return items


def _rows(campaign: Any) -> list[tuple[Any, ...]]:
    model = get_state().models.recipient
    batch = get_state().models.batch
    hostapp.db.session.expire_all()
    result = hostapp.db.session.execute(
        sa.select(
            model.email,
            model.email_key,
            model.incarnation,
            model.variables,
            model.status,
            model.failure_kind,
            batch.seq,
        )
        .outerjoin(batch, batch.id == model.batch_id)
        .where(model.campaign_id == campaign.id)
        .order_by(model.id)
    )
    return [tuple(row) for row in result]


def _send(app: Flask, hooks: Hooks, items: list[dict[str, Any]], name: str) -> Any:
    campaign = hostapp.new_campaign("unused", name)
    hooks.recipients_loader = lambda c: iter(items)
    hostapp.retry.send(campaign)
    hostapp.db.session.rollback()
    worker = make_worker(app, simple=True)
    worker.work(burst=True, max_jobs=1, logging_level="WARNING")  # the preparation job only
    return reload(campaign)


def _expected(campaign: Any) -> list[tuple[Any, ...]]:
    inc = campaign.retry_incarnation
    sent = RecipientStatus.PENDING
    items = _audience()

    def row(i: int, seq: int) -> tuple[Any, ...]:
        email = items[i]["email"]
        return (email, email.casefold(), inc, items[i]["variables"], sent, None, seq)

    failed = ("not an address", "not an address", inc, None, RecipientStatus.FAILED)
    return [
        row(0, 0),
        row(2, 0),
        (*failed, FailureKind.PERMANENT.value, None),
        row(4, 1),
        row(6, 2),
        row(7, 2),
        row(8, 2),
        row(9, 3),
    ]


def test_snapshot_rows_are_exact_on_either_path(
    make_app: Callable[..., Flask],
    database_url: str,
    mailgun: Any,
    hooks: Hooks,
    path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if database_url.startswith("sqlite") and path != "portable":
        pytest.skip("SQLite has no COPY: its portable path is the 'portable' run")
    url = database_url.replace("+psycopg2", "+psycopg" if path == "copy-psycopg3" else "+psycopg2")
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=3, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        dialect = hostapp.db.engine.dialect.name
        assert hostapp.db.engine.dialect.driver == (
            "psycopg" if path == "copy-psycopg3" else hostapp.db.engine.dialect.driver
        )
        if dialect == "sqlite" and path == "copy":
            pytest.skip("SQLite has no COPY: its portable path is the 'portable' run")
        used: list[int] = []
        real = snapshot_copy.copy_text

        def counted(rows: Any, serialize: Any) -> str:
            used.append(len(rows))
            return real(rows, serialize)

        monkeypatch.setattr(snapshot_copy, "copy_text", counted)
        # A second campaign with the same addresses: its rows are its own, none dropped as a
        # duplicate of the first campaign's, none mixed into the first's batches. (Each is
        # checked right after its own preparation job, before any batch job ran.)
        done = []
        for name in ("first", "second"):
            campaign = _send(app, hooks, _audience(), name)
            assert _rows(campaign) == _expected(campaign)
            assert [(b.seq, b.size) for b in batches(campaign)] == [(0, 2), (1, 1), (2, 3), (3, 1)]
            assert (campaign.status, campaign.total_recipients) == (EmailStatus.SENDING, 8)
            done.append(campaign)
            drain(app)  # its batch jobs, so the next preparation job is the next job queued
        assert used == ([2, 2, 3, 2] * 2 if path != "portable" and dialect == "postgresql" else [])
        first, second = done
        assert first.retry_incarnation != second.retry_incarnation


def test_a_passing_fault_during_copy_is_retried_and_loses_nothing(
    make_app: Callable[..., Flask], mailgun: Any, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=3)
    with app.app_context():
        if hostapp.db.engine.dialect.name != "postgresql":
            pytest.skip("the COPY path is PostgreSQL's")
        real = snapshot_copy._copy_function
        faults = [psycopg2.OperationalError("server closed the connection unexpectedly")]

        def flaky(connection: Any) -> Any:
            send = real(connection)

            def first_fails(text: str) -> None:
                if faults:
                    raise faults.pop()
                send(text)

            return first_fails

        monkeypatch.setattr(snapshot_copy, "_copy_function", flaky)
        campaign = hostapp.new_campaign("unused", "flaky")
        hooks.recipients_loader = lambda c: iter(_audience())
        hostapp.retry.send(campaign)
        model = get_state().models.attempt
        prepared = sa.select(model.prepared).where(model.campaign_id == campaign.id)
        drain(app, until=lambda: hostapp.db.session.execute(prepared).scalar_one(), timeout=20)
        assert faults == []
        # The batch jobs ran too (statuses moved on): who was frozen, and in which batch, is
        # exactly what one clean preparation gives.
        assert [row[:4] + row[6:] for row in _rows(campaign)] == [
            row[:4] + row[6:] for row in _expected(reload(campaign))
        ]
        assert [(b.seq, b.size) for b in batches(campaign)] == [(0, 2), (1, 1), (2, 3), (3, 1)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")),
            st.none() | st.text(st.characters(exclude_categories=["Cs"])),
        ),
        max_size=8,
    )
)
def test_copy_text_round_trips_through_postgresql(
    postgres_url: str, values: list[tuple[str, str | None]]
) -> None:
    """Whatever the text, what COPY stores is exactly what was written (variables as JSON)."""
    engine = _engine(postgres_url)
    rows = [{"email": e, "email_key": e.casefold(), "variables": v} for e, v in values]
    with engine.begin() as conn:
        conn.execute(sa.text(snapshot_copy._CREATE))
        send = snapshot_copy._copy_function(conn.connection.driver_connection)
        assert send is not None
        send(snapshot_copy.copy_text(rows, json.dumps))
        stored = conn.execute(
            sa.text(f"SELECT email, email_key, variables::json FROM {snapshot_copy.STAGE}")
        ).all()
    assert [tuple(row) for row in stored] == [(e, e.casefold(), v) for e, v in values]


_ENGINES: dict[str, sa.Engine] = {}


def _engine(url: str) -> sa.Engine:
    if url not in _ENGINES:
        _ENGINES[url] = sa.create_engine(url, poolclass=sa.pool.StaticPool)
    return _ENGINES[url]


def test_copy_field_escapes_exactly_what_copy_text_format_needs() -> None:
    assert snapshot_copy.copy_field(None) == "\\N"
    assert snapshot_copy.copy_field("\\N") == "\\\\N"
    assert snapshot_copy.copy_field("a\tb\nc\rd\\e'f\"g é") == "a\\tb\\nc\\rd\\\\e'f\"g é"


def test_without_temporary_tables_the_snapshot_falls_back_to_insert(
    make_app: Callable[..., Flask], hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database role without the TEMPORARY privilege: the CREATE is refused, the snapshot's
    transaction goes on, and the portable INSERT freezes the very same rows."""
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=3)
    with app.app_context():
        if hostapp.db.engine.dialect.name != "postgresql":
            pytest.skip("the COPY path is PostgreSQL's")
        # Refused like a missing privilege: a ProgrammingError from PostgreSQL itself.
        refused = "CREATE TEMPORARY TABLE pg_catalog.fcr_refused (a int)"
        monkeypatch.setattr(snapshot_copy, "_CREATE", refused)
        used: list[int] = []
        monkeypatch.setattr(snapshot_copy, "copy_text", lambda rows, s: used.append(1) or "")
        campaign = _send(app, hooks, _audience(), "no-temp")
        assert used == []
        assert _rows(campaign) == _expected(campaign)
        assert [(b.seq, b.size) for b in batches(campaign)] == [(0, 2), (1, 1), (2, 3), (3, 1)]
