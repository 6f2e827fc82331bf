"""start_retry() re-checks the rules in its own UPDATE and undoes itself exactly: a second
start while the first is sending is refused, an automatic retry leaves unknown outcomes
alone, a list never frozen is loaded, and a queue error restores every overwritten column."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError

from flask_campaign_retry import (
    EmailStatus,
    FailureKind,
    QueueUnavailable,
    RecipientStatus,
    TransitionRefused,
)
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.policy import start_guard
from flask_campaign_retry.policy.retrying import start_retry
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import AttemptTrigger
from tests import hostapp
from tests.helpers import attempts, drain, recipient_rows, reload
from tests.webapp import draft, partially_sent, set_columns


def test_a_second_start_while_the_first_is_sending_is_refused(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    earliest = utcnow()
    first = hostapp.retry.retry(campaign)
    # The attempt is numbered after the first send's, dated now, and of this campaign row.
    assert first.number == 2
    assert earliest <= first.started_at <= utcnow()
    assert first.incarnation == reload(campaign).retry_incarnation is not None
    with pytest.raises(TransitionRefused):
        hostapp.retry.retry(reload(campaign))
    campaign = reload(campaign)
    assert (campaign.status, campaign.retry_count) == (EmailStatus.SENDING, 1)
    assert [a.id for a in attempts(campaign)][-1] == first.id == campaign.current_attempt_id


def test_an_automatic_retry_leaves_unknown_outcomes_alone(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)  # main000000 and main000001 FAILED
    table = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(table)
        .where(table.c.campaign_id == campaign.id, table.c.email.like("main000001@%"))
        .values(status=RecipientStatus.UNCERTAIN.value, failure_kind=FailureKind.UNCERTAIN.value)
    )
    hostapp.db.session.commit()
    before = dict(mailgun.accepted_emails())
    attempt = start_retry(get_state(), reload(campaign), trigger=AttemptTrigger.AUTOMATIC)
    assert attempt.include_uncertain is False
    drain(web_app)
    after = mailgun.accepted_emails()
    resent = {e for e, n in after.items() if n > before.get(e, 0)}
    assert {e.split("@")[0] for e in resent} == {"main000000"}
    rows = recipient_rows(campaign)
    assert {e.split("@")[0]: r.status for e, r in rows.items()}["main000001"] is (
        RecipientStatus.UNCERTAIN
    )


def test_a_failed_campaign_whose_list_was_never_frozen_is_retried_with_the_loader(
    web_app: Flask, mailgun: Any
) -> None:
    campaign = set_columns(draft(3), status=EmailStatus.FAILED, failed_at=utcnow())
    assert recipient_rows(campaign) == {}
    attempt = hostapp.retry.retry(campaign)
    assert attempt.number == 1  # the campaign's first attempt
    drain(web_app)
    assert sorted(e.split("@")[0] for e in mailgun.accepted_emails()) == [
        "main000000",
        "main000001",
        "main000002",
    ]
    assert reload(campaign).status is EmailStatus.SENT


def test_a_queue_error_restores_every_column_the_start_overwrote(
    web_app: Flask, mailgun: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = partially_sent(web_app, mailgun)
    scheduled = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    campaign = set_columns(campaign, next_auto_retry_at=scheduled)
    before = (
        campaign.status,
        campaign.retry_count,
        campaign.next_auto_retry_at,
        campaign.current_attempt_id,
        [a.id for a in attempts(campaign)],
    )

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise RedisConnectionError("down")

    monkeypatch.setattr(start_guard, "prepare_job_id", refuse)
    with pytest.raises(QueueUnavailable):
        hostapp.retry.retry(campaign)
    campaign = reload(campaign)
    assert before[:3] == (EmailStatus.PARTIALLY_SENT, 0, scheduled)
    assert (
        campaign.status,
        campaign.retry_count,
        campaign.next_auto_retry_at,
        campaign.current_attempt_id,
        [a.id for a in attempts(campaign)],
    ) == before


def test_a_retry_moves_only_its_own_campaign(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    other = partially_sent(web_app, mailgun)
    hostapp.retry.retry(campaign)
    other = reload(other)
    assert (other.status, other.retry_count) == (EmailStatus.PARTIALLY_SENT, 0)
    assert reload(campaign).status is EmailStatus.SENDING
