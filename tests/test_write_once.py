"""Each recipient row is written once per send: the claim takes a batch's PENDING rows without
writing them (they are in flight while the claim holds), the outcome is their one write, and a
dead worker's rows are found by their batch (PENDING under an expired SENDING claim).

A database trigger records every UPDATE of a recipient row, so the tests count real writes on
SQLite and PostgreSQL alike, whatever statement (folded CTE or not) made them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.batch_job import run_batch
from flask_campaign_retry.engine.claims import claim_and_take
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.recovery.sweep import LOST_IN_FLIGHT
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import BatchStatus, EmailStatus, FailureKind, RecipientStatus
from tests import hostapp
from tests.helpers import (
    attempts,
    batches,
    campaign_with,
    drain,
    emails,
    prepare_only,
    recipient_rows,
    reload,
)

LOG = "fcr_test_row_writes"
#: Two batches of the app below: five recipients, then three.
ALL = emails(8)
FIRST, SECOND = ALL[:5], ALL[5:]


def _install_write_log(recipients: str) -> list[str]:
    """SQL that logs (row id, new status) for every UPDATE of ``recipients``; returns the SQL
    that removes it again."""
    session = hostapp.db.session
    session.execute(sa.text(f"CREATE TABLE {LOG} (rid BIGINT, status VARCHAR(16))"))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.text(
                f"CREATE FUNCTION {LOG}_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"INSERT INTO {LOG} VALUES (NEW.id, NEW.status); RETURN NEW; END $$"
            )
        )
        session.execute(
            sa.text(
                f"CREATE TRIGGER {LOG}_tr AFTER UPDATE ON {recipients} "
                f"FOR EACH ROW EXECUTE FUNCTION {LOG}_fn()"
            )
        )
        drop = [f"DROP TRIGGER {LOG}_tr ON {recipients}", f"DROP FUNCTION {LOG}_fn()"]
    else:
        session.execute(
            sa.text(
                f"CREATE TRIGGER {LOG}_tr AFTER UPDATE ON {recipients} "
                f"BEGIN INSERT INTO {LOG} VALUES (NEW.id, NEW.status); END"
            )
        )
        drop = [f"DROP TRIGGER {LOG}_tr"]
    session.commit()
    return [*drop, f"DROP TABLE {LOG}"]


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    """Batches of 5, no campaign-level retry, no chain (each batch job sends its own batch),
    every write of a recipient row logged."""
    app = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=5,
        CAMPAIGN_RETRY_MAX_RETRIES=0,
        CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS=0,
    )
    with app.app_context():
        drop = _install_write_log(get_state().models.recipient.__tablename__)
        yield app
        hostapp.db.session.rollback()
        for statement in drop:
            hostapp.db.session.execute(sa.text(statement))
        hostapp.db.session.commit()


def _written() -> list[tuple[int, str]]:
    """(row id, status written) for every recipient write so far, in order."""
    hostapp.db.session.rollback()
    rows = hostapp.db.session.execute(sa.text(f"SELECT rid, status FROM {LOG}")).all()
    return [(int(rid), str(status)) for rid, status in rows]


def _expire_and_recover(batch_id: int) -> None:
    """As if the worker holding ``batch_id`` died: its lease runs out and the sweep runs."""
    table = get_state().models.batch.__table__
    hostapp.db.session.execute(
        sa.update(table)
        .where(table.c.id == batch_id)
        .values(lease_until=utcnow() - timedelta(seconds=1))
    )
    hostapp.db.session.commit()
    assert hostapp.retry.recover().expired_batches == [batch_id]


def _ids(campaign: Any) -> dict[str, int]:
    return {email: row.id for email, row in recipient_rows(campaign).items()}


def test_a_send_writes_each_recipient_once_with_its_outcome(app: Flask, mailgun: Any) -> None:
    addresses = emails(10)
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(app)
    assert reload(campaign).status is EmailStatus.SENT
    ids = _ids(campaign)
    assert sorted(_written()) == sorted((ids[email], "SENT") for email in addresses)


def test_a_transient_failure_writes_its_rows_once_per_try(app: Flask, mailgun: Any) -> None:
    """A 500 for one batch: its rows are written when the try is deferred (PENDING, keeping
    the error) and again with the second try's outcome; the other batch's rows once."""
    mailgun.add_fault(FaultRule(status=500, match=r"^user00000[5-9]@", times=1))
    addresses = emails(10)
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(app, until=lambda: reload(campaign).status is not EmailStatus.SENDING)
    assert reload(campaign).status is EmailStatus.SENT
    ids = _ids(campaign)
    per_row = Counter(rid for rid, _ in _written())
    expected = {ids[e]: 1 for e in addresses[:5]} | {ids[e]: 2 for e in addresses[5:]}
    assert per_row == Counter(expected)
    assert [status for rid, status in _written() if rid == ids[addresses[5]]] == ["PENDING", "SENT"]


def test_a_claim_writes_no_recipient_and_reports_them_sending(app: Flask, mailgun: Any) -> None:
    campaign = campaign_with(ALL)
    first, second = prepare_only(app, campaign)
    state = get_state()
    claim = claim_and_take(state, "token-under-test", batch_id=first)
    assert claim is not None
    hostapp.db.session.commit()
    assert [r.email for r in claim.recipients] == FIRST
    assert _written() == []
    rows = recipient_rows(campaign)
    assert {e: rows[e].status for e in ALL} == dict.fromkeys(ALL, RecipientStatus.PENDING)
    counts = hostapp.retry.delivery(campaign)["recipients"]
    assert (counts["SENDING"], counts["PENDING"]) == (5, 3)
    # A second claim of the same batch takes nothing: the batch is held.
    assert claim_and_take(state, "another-token", batch_id=first) is None
    hostapp.db.session.rollback()
    assert [b.id for b in batches(campaign)] == [first, second]


def test_a_dead_claims_rows_become_uncertain_and_no_others(app: Flask, mailgun: Any) -> None:
    """The lease sweep finds a dead worker's in-flight rows by their batch: exactly the rows
    of the expired claim become UNCERTAIN; the next batch's stay PENDING and are sent."""
    campaign = campaign_with(ALL)
    first, second = prepare_only(app, campaign)
    state = get_state()
    assert claim_and_take(state, "dead-worker", batch_id=first) is not None
    _expire_and_recover(first)
    rows = recipient_rows(campaign)
    assert {e: rows[e].status for e in ALL} == {
        **dict.fromkeys(FIRST, RecipientStatus.UNCERTAIN),
        **dict.fromkeys(SECOND, RecipientStatus.PENDING),
    }
    lost = (FailureKind.UNCERTAIN.value, None, LOST_IN_FLIGHT, 1)
    for email in FIRST:
        row = rows[email]
        assert (row.failure_kind, row.error_code, row.error_message, row.submissions) == lost
    dead = batches(campaign)[0]
    assert (dead.status, dead.claim_token, dead.lease_until) == (BatchStatus.UNCERTAIN, None, None)
    assert (dead.uncertain, dead.error_kind, dead.error_message) == (5, "uncertain", LOST_IN_FLIGHT)
    assert dead.settled_at is not None
    [attempt] = attempts(campaign)
    assert (attempt.uncertain, attempt.batches_settled, attempt.batches_total) == (5, 1, 2)
    assert run_batch(second) == "settled"
    rows = recipient_rows(campaign)
    assert [rows[e].status for e in SECOND] == [RecipientStatus.SENT] * 3
    assert mailgun.accepted_emails() == dict.fromkeys(SECOND, 1)
    assert reload(campaign).status is EmailStatus.PARTIALLY_SENT


def test_rows_a_release_before_write_once_left_sending_are_expired_too(
    app: Flask, mailgun: Any
) -> None:
    """A 0.1 worker stored SENDING on the rows it took; if it died across the upgrade, the
    sweep still makes those rows UNCERTAIN."""
    campaign = campaign_with(ALL)
    first, _ = prepare_only(app, campaign)
    state = get_state()
    assert claim_and_take(state, "old-worker", batch_id=first) is not None
    recipients = state.models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(recipients)
        .where(recipients.c.batch_id == first)
        .values(status=RecipientStatus.SENDING)
    )
    hostapp.db.session.commit()
    _expire_and_recover(first)
    rows = recipient_rows(campaign)
    assert {e: rows[e].status for e in ALL} == {
        **dict.fromkeys(FIRST, RecipientStatus.UNCERTAIN),
        **dict.fromkeys(SECOND, RecipientStatus.PENDING),
    }
