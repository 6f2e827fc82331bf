"""What counts as a passing database fault, and what a reason may say about an exception
(issue 11.4, 11.5); the built-in providers' ``validate`` step (11.2)."""

from __future__ import annotations

import sqlite3

import psycopg2.errors
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from flask_campaign_retry import OutgoingMessage
from flask_campaign_retry.engine.message_checks import MessageRefused, validate_message
from flask_campaign_retry.engine.reasons import describe, is_transient
from flask_campaign_retry.providers.sandbox.provider import SandboxProvider

STATEMENT = "INSERT INTO campaign_retry_recipient (email) VALUES (%(email)s)"
PARAMS = {"email": "other.person@example.com"}


def wrapped(kind: type[sa.exc.DBAPIError], orig: Exception) -> sa.exc.DBAPIError:
    return kind(STATEMENT, PARAMS, orig)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(
            sa.exc.OperationalError, psycopg2.errors.SerializationFailure("could not serialize")
        ),
        wrapped(sa.exc.OperationalError, psycopg2.errors.DeadlockDetected("deadlock detected")),
        wrapped(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")),
        ConnectionResetError("connection reset by peer"),
        TimeoutError("timed out"),
    ],
)
def test_passing_faults_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(sa.exc.IntegrityError, Exception("duplicate key")),
        wrapped(sa.exc.DataError, Exception("value too long")),
        ValueError("bad value"),
    ],
)
def test_lasting_faults_are_not(error: Exception) -> None:
    assert not is_transient(error)


@given(detail=st.text(max_size=80))
def test_a_database_error_is_described_without_statement_parameters_or_detail(detail: str) -> None:
    text = describe(wrapped(sa.exc.IntegrityError, psycopg2.errors.UniqueViolation(detail)))
    assert text == "a database error (UniqueViolation; the details are in the log)"


def test_a_driver_error_raised_directly_is_described_by_kind_only() -> None:
    error = sqlite3.IntegrityError("UNIQUE failed: other.person@example.com")
    assert describe(error) == "a database error (IntegrityError; the details are in the log)"


def test_other_errors_keep_their_message_on_one_line() -> None:
    assert describe(RuntimeError("service\r\ndown")) == "RuntimeError: service  down"


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        (["a", "b", "c", "d"], "the sandbox provider refuses the message: tags: Mailgun allows"),
        (["a", 3], "tag 2 must be a string, got int"),
    ],
)
def test_the_sandbox_refuses_what_mailgun_cannot_carry(tags: list[object], reason: str) -> None:
    message = OutgoingMessage(subject="s", from_address="f@example.com", text="t", tags=tags)  # type: ignore[arg-type]
    with pytest.raises(MessageRefused, match=reason):
        validate_message(message, SandboxProvider())
