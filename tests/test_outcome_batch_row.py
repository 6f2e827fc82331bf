"""What a batch's run writes on its batch row and its attempt row, field by field: the batch's
status (DONE, QUEUED again for a later try, CANCELLED when nothing was submitted), claim and
lease released, its counters, first error and message id; nothing at all when the run lost its
claim; the attempt's counters, settled batches, the first halt reason kept and the latest pause
kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.claims import claim_and_take
from flask_campaign_retry.engine.outcomes import BatchOutcome, OutcomeWriter
from flask_campaign_retry.engine.submission import GroupOutcome, SubmissionResult
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import BatchStatus, FailureKind
from tests import hostapp
from tests.test_outcome_rows import LONG, Batch, _error

FIELDS = (
    "status",
    "claim_token",
    "lease_until",
    "next_try_at",
    "provider_message_id",
    "provider",
    "sent",
    "failed",
    "uncertain",
    "skipped",
    "error_kind",
    "error_code",
    "error_message",
)


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=20, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        yield app


def _claimed(app: Flask, size: int = 4) -> Batch:
    batch = Batch(app, size)
    claim = claim_and_take(get_state(), "tok", batch_id=batch.batch_id)
    assert claim is not None
    hostapp.db.session.commit()
    return batch


def _settle(batch: Batch, token: str = "tok", **fields: Any) -> bool:
    outcome = BatchOutcome(
        batch_id=batch.batch_id,
        attempt_id=batch.attempt_id,
        claim_token=token,
        campaign_id=batch.campaign.id,
        **fields,
    )
    settled = OutcomeWriter(get_state()).settle_batch(outcome)
    hostapp.db.session.commit()
    return settled


def _row(batch: Batch) -> dict[str, Any]:
    hostapp.db.session.expire_all()
    row = hostapp.db.session.get(get_state().models.batch, batch.batch_id)
    found = {name: getattr(row, name) for name in FIELDS}
    found["status"] = BatchStatus(found["status"])
    found["settled"] = row.settled_at is not None
    return found


def test_a_run_that_settles_its_batch_records_counts_first_error_and_message_id(
    app: Flask,
) -> None:
    batch = _claimed(app, 6)
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(0, 1), message_id="<m1>"),
            GroupOutcome(batch.people(2), error=_error(FailureKind.UNCERTAIN, "gone")),
            GroupOutcome(batch.people(3), error=_error(FailureKind.PERMANENT, LONG, 400)),
            GroupOutcome(batch.people(4), message_id="<m2>"),
        ],
        unsubmitted=batch.people(5),
        calls=4,
    )
    assert _settle(batch, result=result, provider="p" * 150) is True

    assert _row(batch) == {
        "status": BatchStatus.DONE,
        "claim_token": None,
        "lease_until": None,
        "next_try_at": None,
        "provider_message_id": "<m1>",
        "provider": "p" * 100,
        "sent": 3,
        "failed": 1,
        "uncertain": 1,
        "skipped": 0,
        "error_kind": "uncertain",
        "error_code": None,
        "error_message": "gone",
        "settled": True,
    }


def test_a_run_deferred_to_a_later_try_queues_its_batch_again_uncounted(app: Flask) -> None:
    batch = _claimed(app, 3)
    later = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(0, 1), error=_error(FailureKind.TRANSIENT, LONG, 503)),
            GroupOutcome(batch.people(2), message_id="<ok>"),
        ],
        unsubmitted=[],
        calls=2,
    )
    assert _settle(batch, result=result, reschedule_at=later, skipped_ids=[]) is True

    assert _row(batch) == {
        "status": BatchStatus.QUEUED,
        "claim_token": None,
        "lease_until": None,
        "next_try_at": later,
        "provider_message_id": "<ok>",
        "provider": None,
        "sent": 1,
        "failed": 0,
        "uncertain": 0,
        "skipped": 0,
        "error_kind": "transient",
        "error_code": 503,
        "error_message": LONG[:500],
        "settled": False,
    }


def test_a_run_that_submitted_nothing_cancels_its_batch(app: Flask) -> None:
    batch = _claimed(app, 2)
    result = SubmissionResult(outcomes=[], unsubmitted=batch.people(0, 1), calls=0)
    assert _settle(batch, result=result, skipped_ids=[batch.ids[0]]) is True
    row = _row(batch)
    assert (row["status"], row["skipped"], row["settled"], row["error_kind"]) == (
        BatchStatus.CANCELLED,
        1,
        True,
        None,
    )


def test_a_builder_that_raised_settles_the_batch_with_a_fatal_error(app: Flask) -> None:
    batch = _claimed(app, 2)
    assert _settle(batch, builder_error="b" * 600, all_claimed_ids=batch.ids) is True
    row = _row(batch)
    assert (row["status"], row["failed"], row["error_kind"], row["error_code"]) == (
        BatchStatus.DONE,
        2,
        "fatal",
        None,
    )
    assert row["error_message"] == "b" * 500


def test_a_run_that_lost_its_claim_writes_nothing_on_the_batch(app: Flask) -> None:
    batch = _claimed(app, 2)
    before = _row(batch)
    result = SubmissionResult(
        outcomes=[GroupOutcome(batch.people(0, 1), message_id="<m>")], unsubmitted=[], calls=1
    )
    assert _settle(batch, token="someone-else", result=result) is False
    assert _row(batch) == before
    assert before["status"] is BatchStatus.SENDING and before["claim_token"] == "tok"


def test_a_run_adds_to_its_attempt_keeping_the_first_halt_and_the_latest_pause(
    app: Flask,
) -> None:
    batch = _claimed(app, 4)
    writer = OutcomeWriter(get_state())
    soon, later = utcnow() + timedelta(minutes=1), utcnow() + timedelta(minutes=9)
    result = SubmissionResult(
        outcomes=[
            GroupOutcome(batch.people(0, 1), message_id="<m>"),
            GroupOutcome(batch.people(2), error=_error(FailureKind.UNCERTAIN, "?")),
        ],
        unsubmitted=batch.people(3),
        calls=2,
        halted_by=_error(FailureKind.FATAL, "first halt", 401),
    )

    def run(**fields: Any) -> tuple[int, int]:
        outcome = BatchOutcome(
            batch_id=batch.batch_id, attempt_id=batch.attempt_id, claim_token="tok", **fields
        )
        counted = writer.count_into_attempt(outcome)
        hostapp.db.session.commit()
        return counted

    assert run(result=result, pause_until=later) == (1, 1)
    assert run(
        invalid=[(batch.ids[3], "bad")],
        builder_error="second halt",
        pause_until=soon,
        reschedule_at=soon,
    ) == (1, 1)
    attempt = hostapp.db.session.get(get_state().models.attempt, batch.attempt_id)
    hostapp.db.session.refresh(attempt)
    assert (attempt.sent, attempt.failed, attempt.uncertain, attempt.skipped) == (2, 1, 1, 0)
    assert attempt.halt_reason == "first halt"
    assert attempt.paused_until == later.replace(tzinfo=None)
    table = get_state().models.attempt.__table__
    hostapp.db.session.execute(
        sa.update(table).where(table.c.id == batch.attempt_id).values(paused_until=None)
    )
    hostapp.db.session.commit()
    assert run(pause_until=soon) == (2, 1)
    hostapp.db.session.refresh(attempt)
    assert attempt.paused_until == soon.replace(tzinfo=None)
    run(pause_until=later, reschedule_at=later)  # a later pause replaces an earlier one
    hostapp.db.session.refresh(attempt)
    assert attempt.paused_until == later.replace(tzinfo=None)


def test_a_long_halt_reason_is_kept_to_500_characters(app: Flask) -> None:
    batch = _claimed(app, 2)
    outcome = BatchOutcome(
        batch_id=batch.batch_id,
        attempt_id=batch.attempt_id,
        claim_token="tok",
        builder_error="h" * 600,
        all_claimed_ids=batch.ids,
    )
    OutcomeWriter(get_state()).count_into_attempt(outcome)
    hostapp.db.session.commit()
    attempt = hostapp.db.session.get(get_state().models.attempt, batch.attempt_id)
    hostapp.db.session.refresh(attempt)
    assert attempt.halt_reason == "h" * 500
