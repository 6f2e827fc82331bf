"""The recovery sweep's rules, exactly: which batches a sweep expires (SENDING strictly past
their lease), which rows of a dead claim it makes UNCERTAIN (the batch's in-flight rows of its
own campaign, nothing settled), the counters it moves (the batch's and its own attempt's), and
that UNCERTAIN rows of settled batches are looked up through the sweep and reported."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.claims import claim_and_take
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.recovery import sweep
from flask_campaign_retry.recovery.sweep import LOST_IN_FLIGHT, recover, schedule_recovery
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import BatchStatus, EmailStatus, RecipientStatus
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from tests import hostapp
from tests.helpers import (
    UNCERTAIN_CONFIG,
    attempts,
    batches,
    campaign_with,
    emails,
    prepare_only,
    recipient_rows,
    reload,
    uncertain_campaign,
)

ALL = emails(8)
FIRST, SECOND = ALL[:5], ALL[5:]


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=5, CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS=0)
    with app.app_context():
        yield app


def _set(model: Any, where: Any, **values: Any) -> None:
    hostapp.db.session.execute(sa.update(model.__table__).where(where).values(**values))
    hostapp.db.session.commit()


def test_a_sweep_expires_exactly_the_dead_claims_in_flight_rows(app: Flask, mailgun: Any) -> None:
    """Two claims die. The one whose lease ended before the sweep's moment is expired; the one
    ending at that very moment is not, until a later sweep. Only the batch's PENDING rows of
    its own campaign become UNCERTAIN, with the earlier error cleared; the counters move on the
    batch and on its own attempt (whose id differs from its campaign's here)."""
    hostapp.new_campaign("nobody", name="never sent")  # campaign ids now differ from attempt ids
    other = campaign_with(emails(2, prefix="other"), list_name="other")
    campaign = campaign_with(ALL)
    first, second = prepare_only(app, campaign)
    prepare_only(app, other)
    models = get_state().models
    r = models.recipient
    rows = recipient_rows(campaign)
    _set(r, r.id == rows[FIRST[0]].id, status=RecipientStatus.SENT)
    _set(r, r.id == rows[FIRST[1]].id, error_code=503, error_message="earlier try")
    stranger = recipient_rows(other)[emails(2, prefix="other")[0]]
    _set(r, r.id == stranger.id, batch_id=first)
    for batch_id in (first, second):
        assert claim_and_take(get_state(), f"dead-{batch_id}", batch_id=batch_id) is not None
    hostapp.db.session.commit()
    moment = utcnow()
    _set(models.batch, models.batch.id == first, lease_until=moment - timedelta(seconds=1))
    _set(models.batch, models.batch.id == second, lease_until=moment)
    [attempt] = attempts(campaign)
    assert attempt.id != campaign.id

    report = recover(moment)

    assert (report.expired_batches, report.finalized_attempts) == ([first], [])
    # Looked up at once, but too soon to call anyone "never accepted": they stay UNCERTAIN.
    looked_up = {k: v for k, v in report.reconciled.items() if v}
    assert looked_up == {"batches": 1, "examined": 4, "still_uncertain": 4}
    rows = recipient_rows(campaign)
    assert {e: rows[e].status for e in ALL} == {
        FIRST[0]: RecipientStatus.SENT,
        **dict.fromkeys(FIRST[1:], RecipientStatus.UNCERTAIN),
        **dict.fromkeys(SECOND, RecipientStatus.PENDING),
    }
    expired = rows[FIRST[1]]
    assert (expired.error_code, expired.error_message) == (None, LOST_IN_FLIGHT)
    assert recipient_rows(other)[stranger.email].status is RecipientStatus.PENDING
    assert [(b.status, b.uncertain) for b in batches(campaign)] == [
        (BatchStatus.UNCERTAIN, 4),
        (BatchStatus.SENDING, 0),
    ]
    [attempt] = attempts(campaign)
    assert (attempt.uncertain, attempt.batches_settled, attempt.ended_at) == (4, 1, None)

    later = recover(moment + timedelta(seconds=1))
    assert (later.expired_batches, later.finalized_attempts) == ([second], [attempt.id])
    assert [row.status for row in recipient_rows(campaign).values()].count(
        RecipientStatus.UNCERTAIN
    ) == 7
    assert reload(campaign).status is EmailStatus.PARTIALLY_SENT  # the one SENT row
    assert recover(moment + timedelta(seconds=2)).finalized_attempts == []


def _first_batch_claimed(app: Flask) -> tuple[Any, int, Any]:
    """A campaign of ALL prepared in two batches, the first claimed; and the moment after."""
    campaign = campaign_with(ALL)
    first, _second = prepare_only(app, campaign)
    assert claim_and_take(get_state(), "worker", batch_id=first) is not None
    hostapp.db.session.commit()
    return campaign, first, utcnow()


def test_a_batch_settled_between_the_sweeps_select_and_its_update_is_left_alone(
    app: Flask, mailgun: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep reads the expired batches, then expires each with a compare-and-set. A worker
    that settles the batch in between wins: the batch, its rows and its attempt's counters stay
    as the worker left them, and the sweep does not report the batch as expired."""
    campaign, first, moment = _first_batch_claimed(app)
    models = get_state().models
    _set(models.batch, models.batch.id == first, lease_until=moment - timedelta(seconds=1))
    real = sweep._expire_batch

    def worker_settles_first(state: Any, batch_id: int, now: Any) -> bool:
        r = models.recipient
        _set(r, r.batch_id == batch_id, status=RecipientStatus.SENT)
        _set(
            models.batch,
            models.batch.id == batch_id,
            status=BatchStatus.DONE,
            claim_token=None,
            lease_until=None,
        )
        return real(state, batch_id, now)

    monkeypatch.setattr(sweep, "_expire_batch", worker_settles_first)

    report = recover(moment)

    assert report.expired_batches == []
    rows = recipient_rows(campaign)
    assert {e: rows[e].status for e in ALL} == {
        **dict.fromkeys(FIRST, RecipientStatus.SENT),
        **dict.fromkeys(SECOND, RecipientStatus.PENDING),
    }
    assert [(b.status, b.uncertain, b.error_message) for b in batches(campaign)] == [
        (BatchStatus.DONE, 0, None),
        (BatchStatus.QUEUED, 0, None),
    ]
    [attempt] = attempts(campaign)
    assert (attempt.uncertain, attempt.batches_settled) == (0, 0)


def test_an_attempt_another_finalizer_closed_first_is_not_reported_by_the_sweep(
    app: Flask, mailgun: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every batch settled but the attempt still open: the sweep finalizes it, unless another
    finalizer (a worker's last batch) closes it between the sweep's SELECT and its own call;
    then the sweep reports nothing and the campaign keeps the one outcome written."""
    campaign = campaign_with(FIRST)
    [only] = prepare_only(app, campaign)
    models = get_state().models
    r = models.recipient
    _set(r, r.campaign_id == campaign.id, status=RecipientStatus.SENT)
    _set(models.batch, models.batch.id == only, status=BatchStatus.DONE)
    [attempt] = attempts(campaign)
    _set(models.attempt, models.attempt.id == attempt.id, batches_settled=1, sent=5)
    real = sweep.finalize_attempt
    calls: list[object] = []

    def another_finalizer_first(state: Any, attempt_id: int) -> Any:
        calls.append(real(state, attempt_id))  # the worker's finalizer wins the race
        result = real(state, attempt_id)
        calls.append(result)
        return result

    monkeypatch.setattr(sweep, "finalize_attempt", another_finalizer_first)

    report = recover()

    assert calls == [EmailStatus.SENT, None]
    assert report.finalized_attempts == []
    assert reload(campaign).status is EmailStatus.SENT
    [attempt] = attempts(campaign)
    assert attempt.ended_at is not None


@pytest.mark.parametrize("lease", ["renewed", "ends now", "settled"])
def test_the_expiry_compare_and_set_refuses_a_batch_not_sending_past_its_lease(
    app: Flask, mailgun: Any, lease: str
) -> None:
    """A lease renewed since the SELECT, one ending at the very moment, or a batch no longer
    SENDING: the compare-and-set answers False and writes nothing."""
    campaign, first, moment = _first_batch_claimed(app)
    models = get_state().models
    until = {"renewed": moment + timedelta(seconds=30), "ends now": moment}.get(
        lease, moment - timedelta(seconds=1)
    )
    values: dict[str, Any] = {"lease_until": until}
    if lease == "settled":
        values["status"] = BatchStatus.DONE
    _set(models.batch, models.batch.id == first, **values)
    before = [(b.status, b.lease_until, b.claim_token) for b in batches(campaign)]

    assert sweep._expire_batch(get_state(), first, moment) is False

    assert [(b.status, b.lease_until, b.claim_token) for b in batches(campaign)] == before
    rows = recipient_rows(campaign)
    assert {rows[e].status for e in ALL} == {RecipientStatus.PENDING}
    [attempt] = attempts(campaign)
    assert (attempt.uncertain, attempt.batches_settled) == (0, 0)


def test_the_sweep_looks_up_uncertain_rows_of_settled_batches(
    make_app: Any, mailgun: FakeMailgun
) -> None:
    """A batch that timed out after Mailgun accepted it: the sweep asks the Events API and
    reports what it found; a second sweep finds nothing left to look up."""
    app = make_app(**UNCERTAIN_CONFIG)
    with app.app_context():
        campaign = uncertain_campaign(app, mailgun, FaultRule(accept_then_hang=True, hang=0.8))
        mailgun.events.deliver("rc000000@example.com")
        mailgun.events.fail("rc000001@example.com", code=550)
        report = recover()
        found = {k: v for k, v in report.reconciled.items() if v}
        assert found == {
            "examined": 4,
            "batches": 1,
            "sent": 2,
            "delivered": 1,
            "failed_permanent": 1,
        }
        rows = recipient_rows(campaign)
        assert [rows[e].status for e in emails(4, prefix="rc")] == [
            RecipientStatus.DELIVERED,
            RecipientStatus.FAILED,
            RecipientStatus.SENT,
            RecipientStatus.SENT,
        ]
        assert recover().reconciled == {}


def test_two_dead_claims_in_one_sweep_each_lose_their_own_rows(app: Flask, mailgun: Any) -> None:
    """Both batches expire in the same sweep, each with its own rows and counters; a row left
    UNCERTAIN by an earlier try inside a batch still in flight is not looked up meanwhile; once
    the settle time has passed (a sweep a day later), rows the provider never saw are
    classified retryable."""
    campaign = campaign_with(ALL)
    first, second = prepare_only(app, campaign)
    models = get_state().models
    for batch_id in (first, second):
        assert claim_and_take(get_state(), f"dead-{batch_id}", batch_id=batch_id) is not None
    hostapp.db.session.commit()
    r = models.recipient
    earlier = recipient_rows(campaign)[SECOND[0]].id
    _set(r, r.id == earlier, status=RecipientStatus.UNCERTAIN)
    moment = utcnow()
    assert recover(moment).reconciled == {}  # the batch holding it is still in flight
    _set(models.batch, models.batch.id.in_([first, second]), lease_until=moment)

    report = recover(moment + timedelta(seconds=1))

    assert report.expired_batches == [first, second]
    assert [(b.status, b.uncertain) for b in batches(campaign)] == [
        (BatchStatus.UNCERTAIN, 5),
        (BatchStatus.UNCERTAIN, 2),
    ]
    [attempt] = attempts(campaign)
    assert report.finalized_attempts == [attempt.id]
    # Finalized in the same sweep: its counters are recounted from the rows (the earlier
    # UNCERTAIN row included).
    assert (attempt.uncertain, attempt.batches_settled) == (8, 2)
    assert {row.status for row in recipient_rows(campaign).values()} == {RecipientStatus.UNCERTAIN}
    a_day_later = recover(moment + timedelta(days=1))
    assert (a_day_later.reconciled["examined"], a_day_later.reconciled["retryable"]) == (8, 8)


@pytest.mark.parametrize(("lease", "interval"), [(30, 10), (300, 100)])
def test_the_sweep_chain_key_lives_a_third_of_a_lease(
    make_app: Any, lease: int, interval: int
) -> None:
    """The guard that keeps one scheduled sweep per queue expires with the interval (never
    under 10 s), so a chain lost with its job is started again by the next worker."""
    app = make_app(CAMPAIGN_RETRY_LEASE_SECONDS=lease)
    with app.app_context():
        backend = get_state().queue(app)
        assert schedule_recovery(app) is True
        key = f"campaign_retry:{app.config['CAMPAIGN_RETRY_QUEUE']}:recovery-scheduled"
        assert interval - 2 < backend.connection.ttl(key) <= interval
        for job_id in backend.queue.scheduled_job_registry.get_job_ids():
            backend.queue.scheduled_job_registry.remove(job_id, delete_job=True)


def test_a_sweep_judges_schedules_at_its_own_moment(app: Flask, mailgun: Any) -> None:
    """The sweep starts a scheduled campaign due at the moment it was given (within the grace)
    and holds one whose grace had passed by then, whatever the wall clock says."""
    soon = campaign_with(emails(2, prefix="soon"), list_name="soon")
    late = campaign_with(emails(2, prefix="late"), list_name="late")
    at = utcnow() + timedelta(hours=1)
    hostapp.retry.schedule(soon, at)
    hostapp.retry.schedule(late, at - timedelta(minutes=30))
    report = recover(at + timedelta(minutes=45))
    assert (report.started_scheduled, report.held_scheduled) == ([soon.id], [late.id])
    assert (reload(soon).status, reload(late).status) == (
        EmailStatus.SENDING,
        EmailStatus.SCHEDULED,
    )
