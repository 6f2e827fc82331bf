"""What a batch's outcome writes into each recipient row, field by field: the status, failure
kind, code, message (cut at 500 characters), message id, send time and submission count of
every recipient of a run (skipped, invalid, accepted, failed, deferred, uncertain, never
submitted, a builder that raised), and that only rows the run still holds (PENDING, of its own
batch and campaign) are written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.outcomes import BatchOutcome, OutcomeWriter
from flask_campaign_retry.engine.submission import GroupOutcome, SubmissionResult
from flask_campaign_retry.providers.base import BatchRecipient, ProviderError
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import FailureKind, RecipientStatus
from tests import hostapp
from tests.helpers import campaign_with, emails, prepare_only, recipient_rows

PENDING, SENT, FAILED, UNCERTAIN, SKIPPED = (
    RecipientStatus.PENDING,
    RecipientStatus.SENT,
    RecipientStatus.FAILED,
    RecipientStatus.UNCERTAIN,
    RecipientStatus.SKIPPED,
)
LONG = "x" * 600


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=20, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        yield app


class Batch:
    """One prepared batch of ``size`` recipients, its rows by position."""

    def __init__(self, app: Flask, size: int, prefix: str = "r") -> None:
        self.addresses = emails(size, prefix=prefix)
        self.campaign = campaign_with(self.addresses, list_name=prefix)
        [self.batch_id] = prepare_only(app, self.campaign)
        rows = recipient_rows(self.campaign)
        self.ids = [rows[address].id for address in self.addresses]
        self.attempt_id = hostapp.db.session.get(get_state().models.batch, self.batch_id).attempt_id

    def people(self, *positions: int) -> list[BatchRecipient]:
        return [BatchRecipient(self.ids[p], self.addresses[p]) for p in positions]

    def set(self, position: int, **values: Any) -> None:
        table = get_state().models.recipient.__table__
        hostapp.db.session.execute(
            sa.update(table).where(table.c.id == self.ids[position]).values(**values)
        )
        hostapp.db.session.commit()

    def write(self, **fields: Any) -> None:
        outcome = BatchOutcome(
            batch_id=self.batch_id,
            attempt_id=self.attempt_id,
            claim_token="t",
            campaign_id=self.campaign.id,
            **fields,
        )
        OutcomeWriter(get_state()).write_recipients(outcome)
        hostapp.db.session.commit()

    def rows(self) -> list[tuple[Any, ...]]:
        """(status, kind, code, message, message id, submissions, sent) per position."""
        found = recipient_rows(self.campaign)
        return [
            (
                RecipientStatus(row.status),
                row.failure_kind,
                row.error_code,
                row.error_message,
                row.provider_message_id,
                row.submissions,
                row.sent_at is not None,
            )
            for row in (found[address] for address in self.addresses)
        ]


def _error(kind: FailureKind, message: str, code: int | None = None) -> ProviderError:
    return ProviderError(kind, message, code=code)


def _untouched() -> tuple[Any, ...]:
    return (PENDING, None, None, None, None, 0, False)


def test_each_kind_of_outcome_in_groups_writes_its_own_fields(app: Flask) -> None:
    batch = Batch(app, 9)
    batch.set(2, failure_kind="transient", error_code=500, error_message="earlier try")
    batch.set(3, status=SENT, provider_message_id="<other>", submissions=1)  # not held
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(2, 3), message_id="<m1>"),
            GroupOutcome(
                batch.people(4, 5), error=_error(FailureKind.TRANSIENT, "busy " + LONG, 503)
            ),
            GroupOutcome(batch.people(6), error=_error(FailureKind.UNCERTAIN, "read timeout")),
            GroupOutcome(batch.people(8), error=_error(FailureKind.PERMANENT, "refused", 400)),
        ],
        unsubmitted=batch.people(7),
        calls=4,
    )
    batch.write(skipped_ids=[batch.ids[0]], invalid=[(batch.ids[1], "bad " + LONG)], result=result)

    busy = ("busy " + LONG)[:500]
    assert batch.rows() == [
        (SKIPPED, None, None, None, None, 0, False),
        (FAILED, "permanent", None, ("bad " + LONG)[:500], None, 0, False),
        (SENT, None, None, None, "<m1>", 1, True),
        (SENT, None, None, None, "<other>", 1, False),
        (FAILED, "transient", 503, busy, None, 1, False),
        (FAILED, "transient", 503, busy, None, 1, False),
        (UNCERTAIN, "uncertain", None, "read timeout", None, 1, False),
        _untouched(),
        (FAILED, "permanent", 400, "refused", None, 1, False),
    ]


def test_a_transient_failure_waits_in_pending_with_its_error_when_the_batch_is_rescheduled(
    app: Flask,
) -> None:
    batch = Batch(app, 3)
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(0, 1), error=_error(FailureKind.TRANSIENT, "slow", 429)),
            GroupOutcome(batch.people(2), error=_error(FailureKind.PERMANENT, "no", 400)),
        ],
        unsubmitted=[],
        calls=2,
    )
    batch.write(result=result, reschedule_at=utcnow() + timedelta(minutes=1))

    assert batch.rows() == [
        (PENDING, "transient", 429, "slow", None, 1, False),
        (PENDING, "transient", 429, "slow", None, 1, False),
        (FAILED, "permanent", 400, "no", None, 1, False),
    ]


def test_one_accepted_group_for_the_whole_batch_writes_only_its_own_held_rows(app: Flask) -> None:
    """Written by batch id: a row of another campaign naming the same batch id, and a row the
    run no longer holds, keep what they had."""
    batch = Batch(app, 3)
    other = Batch(app, 2, prefix="other")
    table = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(table).where(table.c.id == other.ids[0]).values(batch_id=batch.batch_id)
    )
    hostapp.db.session.commit()
    batch.set(1, status=UNCERTAIN, failure_kind="uncertain", submissions=1)
    result = SubmissionResult(
        outcomes=[GroupOutcome(batch.people(0, 1, 2), message_id="<all>")],
        unsubmitted=[],
        calls=1,
    )
    batch.write(result=result)

    assert batch.rows() == [
        (SENT, None, None, None, "<all>", 1, True),
        (UNCERTAIN, "uncertain", None, None, None, 1, False),
        (SENT, None, None, None, "<all>", 1, True),
    ]
    assert other.rows() == [_untouched(), _untouched()]


def test_answers_recipient_by_recipient_write_each_row_its_own_outcome(app: Flask) -> None:
    """Several one-recipient groups (a provider answering per recipient) are written together;
    a larger group in the same result is written on its own."""
    batch = Batch(app, 8)
    batch.set(1, status=FAILED, failure_kind="permanent", submissions=1)  # not held
    batch.set(0, error_code=500, error_message="earlier", failure_kind="transient")
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(0), message_id="<a>"),
            GroupOutcome(batch.people(1), message_id="<b>"),
            GroupOutcome(batch.people(2), message_id="<c>"),
            GroupOutcome(batch.people(3), error=_error(FailureKind.PERMANENT, "550 " + LONG, 550)),
            GroupOutcome(batch.people(4), error=_error(FailureKind.TRANSIENT, "421 later", 421)),
            GroupOutcome(batch.people(5), error=_error(FailureKind.UNCERTAIN, "lost", None)),
            GroupOutcome(batch.people(6, 7), message_id="<pair>"),
        ],
        unsubmitted=[],
        calls=7,
    )
    batch.write(result=result, reschedule_at=utcnow() + timedelta(minutes=1))

    assert batch.rows() == [
        (SENT, None, None, None, "<a>", 1, True),
        (FAILED, "permanent", None, None, None, 1, False),
        (SENT, None, None, None, "<c>", 1, True),
        (FAILED, "permanent", 550, ("550 " + LONG)[:500], None, 1, False),
        (PENDING, "transient", 421, "421 later", None, 1, False),
        (UNCERTAIN, "uncertain", None, "lost", None, 1, False),
        (SENT, None, None, None, "<pair>", 1, True),
        (SENT, None, None, None, "<pair>", 1, True),
    ]


def test_per_recipient_transient_failures_end_failed_without_a_reschedule(app: Flask) -> None:
    batch = Batch(app, 2)
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(0), error=_error(FailureKind.TRANSIENT, "421", 421)),
            GroupOutcome(batch.people(1), message_id="<b>"),
        ],
        unsubmitted=[],
        calls=2,
    )
    batch.write(result=result)

    assert batch.rows() == [
        (FAILED, "transient", 421, "421", None, 1, False),
        (SENT, None, None, None, "<b>", 1, True),
    ]


def test_a_builder_that_raised_fails_every_claimed_row_fatally_and_writes_nothing_else(
    app: Flask,
) -> None:
    batch = Batch(app, 5)
    batch.set(4, status=SENT, submissions=1)  # not held
    result = SubmissionResult(
        outcomes=[GroupOutcome(batch.people(2, 3), message_id="<never>")], unsubmitted=[], calls=1
    )
    batch.write(
        skipped_ids=[batch.ids[0]],
        invalid=[(batch.ids[1], "bad address")],
        builder_error="builder: " + LONG,
        all_claimed_ids=[batch.ids[2], batch.ids[3], batch.ids[4]],
        result=result,
    )

    fatal = ("builder: " + LONG)[:500]
    assert batch.rows() == [
        (SKIPPED, None, None, None, None, 0, False),
        (FAILED, "permanent", None, "bad address", None, 0, False),
        (FAILED, "fatal", None, fatal, None, 1, False),
        (FAILED, "fatal", None, fatal, None, 1, False),
        (SENT, None, None, None, None, 1, False),
    ]


def test_a_run_with_no_submission_writes_only_its_skipped_and_invalid_rows(app: Flask) -> None:
    batch = Batch(app, 3)
    batch.write(skipped_ids=[batch.ids[2]], invalid=[(batch.ids[0], "bad")])

    assert batch.rows() == [
        (FAILED, "permanent", None, "bad", None, 0, False),
        _untouched(),
        (SKIPPED, None, None, None, None, 0, False),
    ]


def test_an_accepted_group_beside_a_failed_one_writes_only_its_own_rows(app: Flask) -> None:
    """Two groups and nobody left unsubmitted: the accepted group is not the whole batch."""
    batch = Batch(app, 3)
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(0, 1), message_id="<ok>"),
            GroupOutcome(batch.people(2), error=_error(FailureKind.PERMANENT, "no", 400)),
        ],
        unsubmitted=[],
        calls=2,
    )
    batch.write(result=result)

    assert batch.rows() == [
        (SENT, None, None, None, "<ok>", 1, True),
        (SENT, None, None, None, "<ok>", 1, True),
        (FAILED, "permanent", 400, "no", None, 1, False),
    ]


def test_one_accepted_group_with_recipients_left_unsubmitted_is_not_the_whole_batch(
    app: Flask,
) -> None:
    batch = Batch(app, 3)
    result = SubmissionResult(
        outcomes=[GroupOutcome(batch.people(0, 1), message_id="<ok>")],
        unsubmitted=batch.people(2),
        calls=1,
    )
    batch.write(result=result)

    assert batch.rows() == [
        (SENT, None, None, None, "<ok>", 1, True),
        (SENT, None, None, None, "<ok>", 1, True),
        _untouched(),
    ]


def test_two_answers_recipient_by_recipient_are_each_written_once(app: Flask) -> None:
    """A deferred one stays PENDING: written twice, it would count two submissions."""
    batch = Batch(app, 2)
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(0), error=_error(FailureKind.TRANSIENT, "421", 421)),
            GroupOutcome(batch.people(1), message_id="<b>"),
        ],
        unsubmitted=[],
        calls=2,
    )
    batch.write(result=result, reschedule_at=utcnow() + timedelta(minutes=1))

    assert batch.rows() == [
        (PENDING, "transient", 421, "421", None, 1, False),
        (SENT, None, None, None, "<b>", 1, True),
    ]


def test_the_run_counts_each_recipient_by_outcome_and_leaves_deferred_ones_out() -> None:
    """The attempt's counters: a deferred group is not counted yet and does not stop the
    count of the groups after it; uncertain and failed are told apart."""

    def people(*ids: int) -> list[BatchRecipient]:
        return [BatchRecipient(i, f"r{i}@example.com") for i in ids]

    result = SubmissionResult(
        outcomes=[
            GroupOutcome(people(1, 2), error=_error(FailureKind.TRANSIENT, "busy", 503)),
            GroupOutcome(people(3), error=_error(FailureKind.UNCERTAIN, "timeout")),
            GroupOutcome(people(4, 5), error=_error(FailureKind.PERMANENT, "no", 400)),
            GroupOutcome(people(6, 7, 8), message_id="<ok>"),
            GroupOutcome(people(12, 13), error=_error(FailureKind.UNCERTAIN, "502", 502)),
        ],
        unsubmitted=people(9),
        calls=5,
    )
    claimed = list(range(1, 14))
    outcome = BatchOutcome(
        batch_id=1,
        attempt_id=1,
        claim_token="t",
        skipped_ids=[10],
        invalid=[(11, "bad")],
        result=result,
        all_claimed_ids=claimed,
    )
    assert outcome.counts() == {"sent": 3, "failed": 5, "uncertain": 3, "skipped": 1}
    raised = BatchOutcome(
        batch_id=1,
        attempt_id=1,
        claim_token="t",
        skipped_ids=[10],
        invalid=[(11, "bad")],
        builder_error="the message_builder raised",
        all_claimed_ids=[1, 2, 3],
    )
    assert raised.counts() == {"sent": 0, "failed": 4, "uncertain": 0, "skipped": 1}
    deferred = BatchOutcome(
        batch_id=1,
        attempt_id=1,
        claim_token="t",
        result=result,
        reschedule_at=utcnow() + timedelta(minutes=1),
    )
    assert deferred.counts() == {"sent": 3, "failed": 2, "uncertain": 3, "skipped": 0}
