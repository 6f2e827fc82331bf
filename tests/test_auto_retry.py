"""Automatic retry: batch backoff, provider resume times, quota pauses, campaign self-retry."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.policy.backoff import backoff_ceiling, backoff_delay, next_try_at
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from tests import hostapp
from tests.helpers import attempts, batches, campaign_with, drain, emails, recipient_rows, reload


def _not_sending(campaign: Any) -> Any:
    return lambda: reload(campaign).status is not EmailStatus.SENDING


def _provider_calls(caplog: pytest.LogCaptureFixture, batch_id: int) -> list[dict[str, Any]]:
    found = []
    for record in caplog.records:
        data = getattr(record, "campaign_retry", None)
        if data and data.get("event") == "provider_call" and data["batch_id"] == batch_id:
            found.append(data)
    return found


@given(
    tries=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.01, max_value=60),
    cap=st.floats(min_value=60, max_value=86_400),
    seed=st.integers(),
)
def test_backoff_grows_exponentially_within_jitter_bounds(
    tries: int, base: float, cap: float, seed: int
) -> None:
    ceiling = backoff_ceiling(tries, base, cap)
    assert ceiling == pytest.approx(min(cap, base * 2 ** min(tries - 1, 62)))
    previous = backoff_ceiling(tries - 1, base, cap) if tries > 1 else 0.0
    assert previous <= ceiling
    if ceiling < cap and tries > 1:
        assert ceiling == pytest.approx(2 * previous)
    delay = backoff_delay(tries, base, cap, random.Random(seed))
    assert 0.0 <= delay <= ceiling


@given(
    resume_in=st.floats(min_value=0.001, max_value=100_000),
    tries=st.integers(min_value=1, max_value=50),
)
def test_a_resume_time_is_never_anticipated(resume_in: float, tries: int) -> None:
    now = datetime(2026, 11, 29, 12, 0, 0)
    resume = now + timedelta(seconds=resume_in)
    assert next_try_at(now, tries, 10.0, 600.0, resume) >= resume


def test_a_429_with_try_again_after_is_retried_no_earlier_then_succeeds(
    make_app: Any, mailgun: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flask_campaign_retry")
    app = make_app()
    with app.app_context():
        mailgun.add_fault(FaultRule(status=429, resume_in=3, times=1))
        campaign = campaign_with(emails(20))
        hostapp.retry.send(campaign)
        drain(app, until=_not_sending(campaign))
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.SENT
        assert len(attempts(campaign)) == 1
        [batch] = batches(campaign)
        assert batch.tries == 2
        first, second = mailgun.calls
        assert first.status == 429 and second.status == 200
        # The body said "try again after <now + 3 s>" (to the second): not a moment earlier.
        assert second.at - first.at >= timedelta(seconds=2)
        calls = _provider_calls(caplog, batch.id)
        assert [call["http_status"] for call in calls] == [429, 200]
        assert calls[0]["error_kind"] == "transient" and calls[0]["resume_at"]
        assert set(mailgun.accepted_emails().values()) == {1}


def test_a_quota_429_holds_back_the_other_batches_until_the_resume_time(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10)
    with app.app_context():
        mailgun.add_fault(FaultRule(status=429, resume_in=2, times=1))
        campaign = campaign_with(emails(30))
        hostapp.retry.send(campaign)
        drain(app, until=_not_sending(campaign))
        assert reload(campaign).status is EmailStatus.SENT
        calls = mailgun.calls
        assert len(calls) == 4  # the 429 did not burn the other batches against the limit
        assert all(later.at - calls[0].at >= timedelta(seconds=1) for later in calls[1:])


def test_a_run_of_500s_stops_at_the_batch_limit(make_app: Any, mailgun: Any) -> None:
    app = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=10, CAMPAIGN_RETRY_BATCH_MAX_TRIES=3, CAMPAIGN_RETRY_MAX_RETRIES=0
    )
    with app.app_context():
        mailgun.add_fault(FaultRule(status=500, match=r"^user00001\d@"))
        campaign = campaign_with(emails(20))
        hostapp.retry.send(campaign)
        drain(app, until=_not_sending(campaign))
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.PARTIALLY_SENT
        failing = [call for call in mailgun.calls if call.status == 500]
        assert len(failing) == 3
        tries = {b.seq: b.tries for b in batches(campaign)}
        assert tries == {0: 1, 1: 3}
        rows = recipient_rows(campaign)
        assert {rows[e].status for e in emails(20)[10:]} == {RecipientStatus.FAILED}
        assert campaign.next_auto_retry_at is None  # max_retries=0: no campaign-level retry


def test_a_permanent_400_is_never_retried(make_app: Any, mailgun: Any) -> None:
    app = make_app()
    with app.app_context():
        mailgun.add_fault(FaultRule(status=400, message="'from' parameter is missing"))
        campaign = campaign_with(emails(5))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.FAILED
        assert mailgun.request_count == 1
        assert campaign.next_auto_retry_at is None
        assert {row.failure_kind for row in recipient_rows(campaign).values()} == {"permanent"}


def test_campaign_level_auto_retry_happens_once_after_backoff(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_MAX_TRIES=1)
    with app.app_context():
        mailgun.add_fault(FaultRule(status=503, times=1))
        campaign = campaign_with(emails(8))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.FAILED
        assert campaign.next_auto_retry_at is not None
        drain(app, until=lambda: reload(campaign).status is EmailStatus.SENT)
        campaign = reload(campaign)
        assert campaign.retry_count == 1
        assert campaign.next_auto_retry_at is None
        assert [(a.number, a.trigger, a.outcome) for a in attempts(campaign)] == [
            (1, "initial", "FAILED"),
            (2, "automatic", "SENT"),
        ]
        assert mailgun.request_count == 2
        assert set(mailgun.accepted_emails().values()) == {1}
