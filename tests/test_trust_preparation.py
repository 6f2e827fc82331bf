"""Preparation survives passing database faults (issue 11.4), refuses invalid addresses one
recipient at a time (11.5), and never shows SQL, bound parameters or other recipients'
addresses in a reason a person sees (11.5). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_campaign_retry import EmailStatus, FailureKind, RecipientStatus
from flask_campaign_retry.engine import snapshot
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from tests import hostapp
from tests.helpers import attempts, batches, drain, recipient_rows, reload

GOOD = ["ann@example.com", "bea@example.com", "cid@example.com"]


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False, CAMPAIGN_RETRY_BATCH_MAX_TRIES=3)
    with app.app_context():
        yield app


@pytest.fixture
def use_loader() -> Iterator[Callable[[Callable[[Any], Any]], None]]:
    original = hostapp.retry.hooks.recipients_loader
    yield hostapp.retry.recipients_loader  # type: ignore[misc]
    hostapp.retry.recipients_loader(original)  # type: ignore[arg-type]


def finished(campaign: Any) -> Callable[[], bool]:
    return lambda: reload(campaign).status is not EmailStatus.SENDING


def db_error(kind: type[sa.exc.DBAPIError], text: str) -> sa.exc.DBAPIError:
    """What SQLAlchemy raises for a failed INSERT: statement, parameters and the driver's text."""
    return kind(
        "INSERT INTO campaign_retry_batch (campaign_id, email) VALUES (?, ?)",
        {"email": "someone.else@example.com"},
        Exception(text),
    )


# -- passing faults (11.4) --------------------------------------------------------------------


def test_a_loader_connection_error_is_retried_and_the_campaign_sent(
    app: Flask, mailgun: FakeMailgun, use_loader: Any
) -> None:
    calls: list[int] = []

    def flaky(campaign: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError("subscriber database restarting")
        yield from GOOD

    use_loader(flaky)
    campaign = hostapp.new_campaign("none")
    hostapp.retry.send(campaign)
    drain(app, until=finished(campaign))

    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends) == (EmailStatus.SENT, 3)
    assert len(calls) == 3
    assert sorted(mailgun.accepted_emails().elements()) == GOOD


def test_our_insert_failing_once_is_retried(
    app: Flask, mailgun: FakeMailgun, use_loader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = snapshot.insert_batch
    failures = [db_error(sa.exc.OperationalError, "server closed the connection unexpectedly")]

    def insert_batch(*args: Any) -> int:
        if failures:
            raise failures.pop()
        return real(*args)

    monkeypatch.setattr(snapshot, "insert_batch", insert_batch)
    use_loader(lambda campaign: iter(GOOD))
    campaign = hostapp.new_campaign("none")
    hostapp.retry.send(campaign)
    drain(app, until=finished(campaign))
    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends) == (EmailStatus.SENT, 3)
    assert sorted(recipient_rows(campaign)) == GOOD


def test_a_lasting_fault_fails_honestly_and_retry_reruns_the_loader(
    app: Flask, mailgun: FakeMailgun, use_loader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def insert_batch(*args: Any) -> int:
        raise db_error(sa.exc.OperationalError, "terminating connection due to administrator")

    monkeypatch.setattr(snapshot, "insert_batch", insert_batch)
    loads: list[int] = []

    def loader(campaign: Any) -> Any:
        loads.append(1)
        return iter(GOOD)

    use_loader(loader)
    campaign = hostapp.new_campaign("none")
    hostapp.retry.send(campaign)
    drain(app, until=finished(campaign))

    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert campaign.failure_reason == (
        "Sending stopped: the database failed while the recipient list was prepared: "
        "a database error (Exception; the details are in the log) (tried 3 times); "
        "Retry prepares it again."
    )
    assert len(loads) == 3
    assert recipient_rows(campaign) == {}

    monkeypatch.undo()
    verdict = hostapp.retry.retry_eligibility(campaign)
    assert verdict.allowed, verdict.reason
    hostapp.retry.retry(campaign)
    drain(app, until=finished(campaign))
    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends) == (EmailStatus.SENT, 3)
    assert len(loads) == 4
    assert [a.number for a in attempts(campaign)] == [1, 2]


def test_a_terminated_backend_during_our_insert_is_retried(
    app: Flask, mailgun: FakeMailgun, use_loader: Any, postgres_url: str
) -> None:
    """On PostgreSQL, a real `pg_terminate_backend` of the preparing session's connection."""
    if hostapp.db.engine.dialect.name != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    admin = sa.create_engine(postgres_url)
    runs: list[int] = []

    def loader(campaign: Any) -> Any:
        runs.append(1)
        pid = hostapp.db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        if len(runs) == 1:
            with admin.connect() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                conn.commit()
        yield from GOOD

    use_loader(loader)
    try:
        campaign = hostapp.new_campaign("none")
        hostapp.retry.send(campaign)
        drain(app, until=finished(campaign))
    finally:
        admin.dispose()
    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends) == (EmailStatus.SENT, 3)
    assert len(runs) == 2


# -- invalid addresses and what reasons may say (11.5) ----------------------------------------

BAD = ["x" * 10_000 + "@example.com", "nul\x00@example.com", "lone\ud800@example.com"]


def test_invalid_addresses_fail_alone_and_the_rest_is_sent(
    make_app: Any, mailgun: FakeMailgun, use_loader: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False, CAMPAIGN_RETRY_BATCH_SIZE=2)
    with app.app_context():
        use_loader(lambda campaign: iter([GOOD[0], *BAD, GOOD[1], GOOD[2]]))
        campaign = hostapp.new_campaign("none")
        hostapp.retry.send(campaign)
        drain(app)

        campaign = reload(campaign)
        assert campaign.status is EmailStatus.PARTIALLY_SENT
        assert (campaign.successful_sends, campaign.total_recipients) == (3, 6)
        assert sorted(mailgun.accepted_emails().elements()) == GOOD
        rows = recipient_rows(campaign)
        refused = [row for row in rows.values() if row.status is RecipientStatus.FAILED]
        assert len(refused) == 3
        for row in refused:
            assert row.failure_kind == FailureKind.PERMANENT.value
            assert row.error_message.startswith("invalid address")
            assert len(row.email) <= 320 and "\x00" not in row.email
        assert sum(b.size for b in batches(campaign)) == 3
        reason = campaign.failure_reason
        assert reason.startswith("3 of 6 recipients did not get the email: ")
        for address in GOOD:
            assert address not in reason


def test_a_database_error_in_the_loader_shows_no_sql_and_no_parameters(
    app: Flask, use_loader: Any
) -> None:
    def loader(campaign: Any) -> Any:
        yield GOOD[0]
        raise db_error(sa.exc.IntegrityError, "duplicate key: Key (email)=(bea@example.com)")

    use_loader(loader)
    campaign = hostapp.new_campaign("none")
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert campaign.failure_reason == (
        "Sending stopped: the recipients_loader raised a database error "
        "(Exception; the details are in the log)."
    )


def test_our_own_failing_insert_is_not_blamed_on_the_loader_and_shows_no_data(
    app: Flask, use_loader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def insert_batch(*args: Any) -> int:
        raise db_error(sa.exc.DataError, "value too long; row (bea@example.com)")

    monkeypatch.setattr(snapshot, "insert_batch", insert_batch)
    use_loader(lambda campaign: iter(GOOD))
    campaign = hostapp.new_campaign("none")
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.failure_reason == (
        "Sending stopped: preparing the recipient list failed: a database error "
        "(Exception; the details are in the log)."
    )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_address_becomes_a_row_every_database_takes(address: str) -> None:
    row = snapshot.recipient_row(1, "inc", address, {}, True)
    stored = row["email"]
    assert len(stored) <= 320 and len(row["email_key"]) <= 320
    assert "\x00" not in stored
    stored.encode("utf-8")  # no lone surrogate
    if row["status"] is RecipientStatus.PENDING:
        assert stored == address
    else:
        assert row["failure_kind"] == FailureKind.PERMANENT.value
        assert row["error_message"].startswith("invalid address")
        row["error_message"].encode("utf-8")


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bad=st.one_of(
        st.text(min_size=1, max_size=30).map(lambda s: s + "\x00@example.com"),
        st.text(min_size=321, max_size=2000).map(lambda s: s + "@example.com"),
        st.sampled_from(["\udfff@example.com", "a@\ud800.example.com", "no-at-sign"]),
    )
)
def test_a_hostile_address_never_fails_the_others(
    app: Flask, mailgun: FakeMailgun, use_loader: Any, bad: str
) -> None:
    mailgun.reset()
    use_loader(lambda campaign: iter([GOOD[0], bad, GOOD[1]]))
    campaign = hostapp.new_campaign("none")
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.PARTIALLY_SENT
    assert sorted(mailgun.accepted_emails().elements()) == GOOD[:2]
    assert GOOD[0] not in campaign.failure_reason
    assert "INSERT" not in campaign.failure_reason
