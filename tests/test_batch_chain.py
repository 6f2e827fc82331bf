"""A batch job keeps going after its batch (engine.chain): one job serves several batches
within its time budget, discards the waiting jobs of the batches it took, and on PostgreSQL
a batch costs two SQL statements (claim+take, settle+write+count)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus, signals
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.config import DEFAULTS, load_settings
from flask_campaign_retry.engine import chain
from flask_campaign_retry.engine.batch_job import run_batch
from flask_campaign_retry.engine.chain import ChainBudget
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.queue.job_ids import batch_job_id
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import (
    batches,
    campaign_with,
    drain,
    emails,
    prepare_only,
    recipient_rows,
    reload,
)


def _queued_job_ids(app: Flask) -> set[str]:
    return set(get_state().queue(app).queue.get_job_ids())


def test_one_job_sends_every_batch_and_discards_their_waiting_jobs(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10)
    with app.app_context():
        addresses = emails(45)
        campaign = campaign_with(addresses)
        batch_ids = prepare_only(app, campaign)
        queue_name = app.config["CAMPAIGN_RETRY_QUEUE"]
        waiting = {batch_job_id(queue_name, batch_id, 0) for batch_id in batch_ids}
        assert _queued_job_ids(app) == waiting
        assert run_batch(batch_ids[0]) == "settled"
        assert mailgun.request_count == 5
        assert mailgun.accepted_emails() == {address: 1 for address in addresses}
        assert reload(campaign).status is EmailStatus.SENT
        assert [b.status for b in batches(campaign)] == ["DONE"] * 5
        # The job run here by hand still waits (a worker would have popped it); the chain
        # discarded the jobs of the four batches it took, hashes included.
        own = batch_job_id(queue_name, batch_ids[0], 0)
        assert _queued_job_ids(app) == {own}
        backend = get_state().queue(app)
        keys = [backend.job_class.key_for(job_id) for job_id in waiting - {own}]
        assert backend.connection.exists(*keys) == 0


def test_the_job_of_a_batch_a_chain_took_finds_nothing_to_do(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10)
    with app.app_context():
        campaign = campaign_with(emails(30))
        batch_ids = prepare_only(app, campaign)
        assert run_batch(batch_ids[1]) == "settled"  # chains batches 0 and 2 (by seq)
        assert mailgun.request_count == 3
        assert run_batch(batch_ids[0]) == "not claimable"
        assert run_batch(batch_ids[2]) == "not claimable"
        assert mailgun.request_count == 3


def test_a_chain_stops_when_its_time_budget_is_spent(
    make_app: Any, mailgun: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks: Iterator[float] = iter(float(n) for n in range(1000))
    monkeypatch.setattr(chain, "clock", lambda: next(ticks))
    # The budget starts at 0; before each further batch the clock reads 1, 2, 3...: with 2.5 s
    # the job sends its own batch and two more, and the clock at 3 s stops it.
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10, CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS=2.5)
    with app.app_context():
        campaign = campaign_with(emails(60))
        batch_ids = prepare_only(app, campaign)
        assert run_batch(batch_ids[0]) == "settled"
        assert mailgun.request_count == 3
        assert [b.status for b in batches(campaign)] == ["DONE"] * 3 + ["QUEUED"] * 3
        # The batches it did not reach keep their jobs, which a worker then runs (so does
        # the job run here by hand, which then finds its batch settled).
        queue_name = app.config["CAMPAIGN_RETRY_QUEUE"]
        unreached = [batch_ids[0], *batch_ids[3:]]
        assert _queued_job_ids(app) == {batch_job_id(queue_name, b, 0) for b in unreached}
        drain(app)
        assert mailgun.request_count == 6
        assert reload(campaign).status is EmailStatus.SENT


def test_a_zero_budget_sends_one_batch_per_job(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10, CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS=0)
    with app.app_context():
        campaign = campaign_with(emails(30))
        batch_ids = prepare_only(app, campaign)
        assert run_batch(batch_ids[0]) == "settled"
        assert mailgun.request_count == 1
        assert [b.status for b in batches(campaign)] == ["DONE", "QUEUED", "QUEUED"]


def test_a_chain_skips_batches_that_are_not_due(make_app: Any, mailgun: Any) -> None:
    """A batch rescheduled after a transient failure waits for its time, chain or not."""
    mailgun.add_fault(FaultRule(status=503, times=1, on_calls=frozenset({1})))
    app = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=10,
        CAMPAIGN_RETRY_BACKOFF_BASE=60.0,
        CAMPAIGN_RETRY_BACKOFF_CAP=120.0,
    )
    with app.app_context():
        campaign = campaign_with(emails(30))
        batch_ids = prepare_only(app, campaign)
        assert run_batch(batch_ids[0]) == "rescheduled"
        assert mailgun.request_count == 3  # batch 0 refused once, then batches 1 and 2
        found = {b.id: b for b in batches(campaign)}
        assert found[batch_ids[0]].status == "QUEUED"
        assert found[batch_ids[0]].next_try_at is not None
        assert [found[b].status for b in batch_ids[1:]] == ["DONE", "DONE"]
        pending = {
            email
            for email, row in recipient_rows(campaign).items()
            if row.status == RecipientStatus.PENDING
        }
        assert pending == set(emails(30)[:10])


def test_the_budget_is_at_most_half_the_job_timeout() -> None:
    config = {**DEFAULTS, "CAMPAIGN_RETRY_JOB_TIMEOUT": 40}
    settings = load_settings({**config, "CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS": 60})

    class _State:
        pass

    state: Any = _State()
    state.settings = settings
    assert ChainBudget(state).seconds == 20.0
    state.settings = load_settings({**config, "CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS": 5})
    assert ChainBudget(state).seconds == 5.0


@pytest.mark.parametrize("value", [-1, "ten", True])
def test_a_bad_budget_is_refused_by_name(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS"):
        load_settings({**DEFAULTS, "CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS": value})


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_postgresql_each_batch_costs_two_statements(make_app: Any, mailgun: Any) -> None:
    """claim+take in one statement, settle+write+count in another: sending five batches more
    costs exactly ten statements more (the finalizer and the last, empty claim are the same)."""

    def statements_to_send(size: int) -> int:
        campaign = campaign_with(emails(size * 10, prefix=f"s{size}x"), list_name=f"l{size}")
        batch_ids = prepare_only(app, campaign)
        executed: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            executed.append(statement)

        engine = hostapp.db.engine
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert run_batch(batch_ids[0]) == "settled"
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert reload(campaign).status is EmailStatus.SENT
        assert len(batch_ids) == size
        claims = [s for s in executed if s.lstrip().startswith("WITH claimed")]
        settles = [s for s in executed if s.lstrip().startswith("WITH settled")]
        assert (len(claims), len(settles)) == (size + 1, size)  # the last claim finds none
        get_state().queue(app).queue.empty()  # the first batch's job, run here by hand
        return len(executed)

    def elsewhere(*_args: Any, **_outcomes: Any) -> None:
        raise AssertionError("a receiver connected for another app was called")

    # A receiver another app connected for itself costs this app's batches nothing.
    another_host = Flask("another_host")
    signals.recipients_settled.connect(elsewhere, sender=another_host, weak=False)
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10)
    try:
        with app.app_context():
            five, ten = statements_to_send(5), statements_to_send(10)
    finally:
        signals.recipients_settled.disconnect(elsewhere)
    with app.app_context():
        assert ten - five == 10
        # With batches of 1,000 that is 2 per 1,000 recipients plus the finalizer once.
        assert five - 2 * 5 - 1 <= 12


def test_retry_targeting_reaches_exactly_the_failed_set_in_id_order(
    make_app: Any, mailgun: Any
) -> None:
    """One ordered pass over the retryable ids (streamed on PostgreSQL): every failed
    recipient, and no other, lands in a retry batch, batches filled in id order."""
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        addresses = emails(75, prefix="t")
        campaign = campaign_with(addresses)
        hostapp.retry.send(campaign)
        drain(app)
        assert reload(campaign).status is EmailStatus.SENT
        recipients = get_state().models.recipient.__table__
        campaigns = hostapp.Campaign.__table__
        ids = sorted(row.id for row in recipient_rows(campaign).values())
        failed_ids = ids[::3]  # 25 recipients spread over the whole list
        hostapp.db.session.execute(
            sa.update(recipients)
            .where(recipients.c.id.in_(failed_ids))
            .values(status=RecipientStatus.FAILED, failure_kind="transient")
        )
        hostapp.db.session.execute(
            sa.update(campaigns)
            .where(campaigns.c.id == campaign.id)
            .values(status=EmailStatus.PARTIALLY_SENT, failed_at=utcnow())
        )
        hostapp.db.session.commit()
        mailgun.reset()
        hostapp.retry.retry(reload(campaign))
        drain(app)
        failed = {row.email for row in recipient_rows(campaign).values() if row.id in failed_ids}
        assert mailgun.accepted_emails() == {address: 1 for address in failed}
        assert reload(campaign).status is EmailStatus.SENT
        retry_batches = [b for b in batches(campaign) if b.seq is not None][-3:]
        assert [b.size for b in retry_batches] == [10, 10, 5]
        by_batch = {
            b.id: sorted(
                row.id for row in recipient_rows(campaign).values() if row.batch_id == b.id
            )
            for b in retry_batches
        }
        assert [by_batch[b.id] for b in retry_batches] == [
            failed_ids[:10],
            failed_ids[10:20],
            failed_ids[20:],
        ]
