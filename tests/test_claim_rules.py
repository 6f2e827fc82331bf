"""The claim's rules, read off the rows (SQLite, and PostgreSQL's one-statement form): what may be
claimed (QUEUED, due, its attempt neither halted nor paused), which batch an attempt-wide claim
takes (the lowest due ``seq``), what a claim writes on its batch (SENDING, token, lease, one more
try) and which recipients it takes (the batch's PENDING rows of its own campaign, by id)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.claims import claim_and_take
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import BatchStatus, RecipientStatus
from tests import hostapp
from tests.helpers import batches, campaign_with, emails, prepare_only, recipient_rows

LEASE = 600


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=3, CAMPAIGN_RETRY_LEASE_SECONDS=LEASE)
    with app.app_context():
        yield app


def _set(model: Any, row_id: int, **values: Any) -> None:
    table = model.__table__
    hostapp.db.session.execute(sa.update(table).where(table.c.id == row_id).values(**values))
    hostapp.db.session.commit()


def _claim(**target: Any) -> Any:
    claim = claim_and_take(get_state(), "tok", **target)
    hostapp.db.session.commit()
    return claim


def test_a_claim_holds_its_batch_under_a_token_and_a_lease(app: Flask, mailgun: Any) -> None:
    hostapp.new_campaign("nobody", name="never sent")  # campaign ids now differ from attempt ids
    campaign = campaign_with(emails(5))
    first, _ = prepare_only(app, campaign)
    _set(get_state().models.batch, first, tries=2)
    before = utcnow()
    claim = _claim(batch_id=first)
    after = utcnow()
    assert (claim.batch_id, claim.campaign_id, claim.tries) == (first, campaign.id, 3)
    [attempt] = [
        a.id
        for a in hostapp.db.session.execute(
            sa.select(get_state().models.attempt).where(
                get_state().models.attempt.campaign_id == campaign.id
            )
        ).scalars()
    ]
    assert claim.attempt_id == attempt
    assert claim.message is not None and claim.message["subject"]
    batch = batches(campaign)[0]
    assert (batch.status, batch.claim_token, batch.tries) == (BatchStatus.SENDING, "tok", 3)
    lease = timedelta(seconds=LEASE)
    assert before + lease <= batch.lease_until <= after + lease


def test_it_takes_its_campaigns_pending_rows_by_id(app: Flask, mailgun: Any) -> None:
    """Rows already settled in the batch, and a row of another campaign that names the same
    batch id (a deleted campaign's leftovers), are not taken; variables come back as dicts."""
    campaign = campaign_with(emails(5))
    other = campaign_with(emails(2, prefix="other"), list_name="other")
    first, _ = prepare_only(app, campaign)
    prepare_only(app, other)
    recipients = get_state().models.recipient
    rows = recipient_rows(campaign)
    _set(recipients, rows[emails(5)[1]].id, status=RecipientStatus.SENT)
    _set(recipients, rows[emails(5)[2]].id, variables=None)
    stranger = recipient_rows(other)[emails(2, prefix="other")[0]]
    _set(recipients, stranger.id, batch_id=first)
    claim = _claim(batch_id=first)
    assert [(r.id, r.email) for r in claim.recipients] == [
        (rows[e].id, e) for e in (emails(5)[0], emails(5)[2])
    ]
    assert claim.recipients[0].variables == {"first_name": "n0"}
    assert claim.recipients[1].variables == {}


@pytest.mark.parametrize(
    ("field", "offset", "claimed"),
    [
        ("next_try_at", 60, False),
        ("next_try_at", -1, True),
        ("paused_until", 60, False),
        ("paused_until", -1, True),
    ],
)
def test_a_batch_is_claimed_only_when_due_and_not_paused(
    app: Flask, mailgun: Any, field: str, offset: int, claimed: bool
) -> None:
    campaign = campaign_with(emails(3))
    [only] = prepare_only(app, campaign)
    state = get_state()
    moment = utcnow() + timedelta(seconds=offset)
    if field == "next_try_at":
        _set(state.models.batch, only, next_try_at=moment)
    else:
        _set(state.models.attempt, batches(campaign)[0].attempt_id, paused_until=moment)
    assert (_claim(batch_id=only) is not None) is claimed
    expected = BatchStatus.SENDING if claimed else BatchStatus.QUEUED
    assert batches(campaign)[0].status == expected


def test_a_halted_attempt_or_a_settled_batch_is_never_claimed(app: Flask, mailgun: Any) -> None:
    campaign = campaign_with(emails(5))
    first, second = prepare_only(app, campaign)
    state = get_state()
    _set(state.models.batch, second, status=BatchStatus.DONE)
    assert _claim(batch_id=second) is None
    _set(state.models.attempt, batches(campaign)[0].attempt_id, halt_reason="bad key")
    assert _claim(batch_id=first) is None
    assert [b.status for b in batches(campaign)] == [BatchStatus.QUEUED, BatchStatus.DONE]


def test_an_attempt_wide_claim_takes_the_lowest_due_seq(app: Flask, mailgun: Any) -> None:
    campaign = campaign_with(emails(9))
    first, second, third = prepare_only(app, campaign)
    state = get_state()
    attempt_id = batches(campaign)[0].attempt_id
    _set(state.models.batch, first, next_try_at=utcnow() + timedelta(seconds=60))
    assert _claim(attempt_id=attempt_id).batch_id == second
    assert _claim(attempt_id=attempt_id).batch_id == third
    assert _claim(attempt_id=attempt_id) is None  # the first is not due, the others are held
    statuses = [b.status for b in batches(campaign)]
    assert statuses == [BatchStatus.QUEUED, BatchStatus.SENDING, BatchStatus.SENDING]


@pytest.mark.parametrize("hold", ["halt_reason", "paused_until"])
def test_only_the_batches_own_attempt_holds_it_back(app: Flask, mailgun: Any, hold: str) -> None:
    """Another campaign's open attempt does not make a halted or paused attempt claimable, and
    a halted or paused attempt does not hold another campaign's batches back."""
    held = campaign_with(emails(3))
    other = campaign_with(emails(3, prefix="other"), list_name="other")
    [held_batch] = prepare_only(app, held)
    [other_batch] = prepare_only(app, other)
    value: Any = "bad key" if hold == "halt_reason" else utcnow() + timedelta(seconds=60)
    _set(get_state().models.attempt, batches(held)[0].attempt_id, **{hold: value})
    assert _claim(batch_id=held_batch) is None
    assert _claim(batch_id=other_batch).batch_id == other_batch
    assert [batches(held)[0].status, batches(other)[0].status] == [
        BatchStatus.QUEUED,
        BatchStatus.SENDING,
    ]


def test_an_attempt_wide_claim_stays_in_its_attempt_and_follows_seq_not_id(
    app: Flask, mailgun: Any
) -> None:
    """Another campaign's due batch is never taken; within the attempt the order is ``seq``
    (renumbered here against the row ids)."""
    other = campaign_with(emails(3, prefix="other"), list_name="other")
    prepare_only(app, other)
    campaign = campaign_with(emails(9))
    first, second, third = prepare_only(app, campaign)
    state = get_state()
    for batch_id, seq in ((first, 10), (second, 11), (third, 5)):
        _set(state.models.batch, batch_id, seq=seq)
    attempt_id = batches(campaign)[0].attempt_id
    taken = [_claim(attempt_id=attempt_id).batch_id for _ in range(3)]
    assert taken == [third, first, second]
    assert _claim(attempt_id=attempt_id) is None
    assert batches(other)[0].status == BatchStatus.QUEUED


@pytest.mark.parametrize("field", ["next_try_at", "paused_until"])
def test_a_batch_is_due_at_the_very_moment_its_wait_ends(
    app: Flask, mailgun: Any, field: str
) -> None:
    campaign = campaign_with(emails(3))
    [only] = prepare_only(app, campaign)
    state = get_state()
    moment = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    if field == "next_try_at":
        _set(state.models.batch, only, next_try_at=moment)
    else:
        _set(state.models.attempt, batches(campaign)[0].attempt_id, paused_until=moment)
    with time_machine.travel(moment.replace(tzinfo=UTC), tick=False):
        assert _claim(batch_id=only).batch_id == only


def test_on_postgresql_a_claim_skips_a_batch_another_transaction_holds(
    app: Flask, mailgun: Any
) -> None:
    """Another worker's transaction holds the first due batch's row: an attempt-wide claim takes
    the next one at once (SKIP LOCKED) instead of waiting for that lock; a claim of the held
    batch by id gets nothing, at once too."""
    if hostapp.db.engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only")
    campaign = campaign_with(emails(7))
    first, second, _ = prepare_only(app, campaign)
    attempt_id = batches(campaign)[0].attempt_id
    table = get_state().models.batch.__table__
    with hostapp.db.engine.connect() as other:
        other.execute(sa.select(table.c.id).where(table.c.id == first).with_for_update())
        hostapp.db.session.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
        claim = claim_and_take(get_state(), "tok", attempt_id=attempt_id)
        assert claim is not None and claim.batch_id == second
        hostapp.db.session.commit()
        hostapp.db.session.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
        assert claim_and_take(get_state(), "tok2", batch_id=first) is None
        hostapp.db.session.rollback()
        other.rollback()
    found = {b.id: b.status for b in batches(campaign)}
    assert (found[first], found[second]) == (BatchStatus.QUEUED, BatchStatus.SENDING)
