"""retry_eligibility() at its edges: uncertain recipients only counted when asked for, the
exact end of the window, a campaign without a failure time, and every figure of a refusal."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
import time_machine
from flask import Flask

from flask_campaign_retry import EmailStatus, FailureKind, RecipientStatus
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.webapp import draft, partially_sent, set_columns


def _make_uncertain(campaign: Any) -> None:
    """The two FAILED recipients of ``partially_sent`` become UNCERTAIN."""
    table = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(table)
        .where(table.c.campaign_id == campaign.id, table.c.status == "FAILED")
        .values(status=RecipientStatus.UNCERTAIN.value, failure_kind=FailureKind.UNCERTAIN.value)
    )
    hostapp.db.session.commit()


def test_uncertain_recipients_count_only_when_included(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    _make_uncertain(campaign)
    other = partially_sent(web_app, mailgun)  # another campaign's uncertain rows never count
    _make_uncertain(other)
    plain = hostapp.retry.retry_eligibility(campaign)
    assert (plain.allowed, plain.code, plain.retryable, plain.uncertain) == (
        False,
        "nothing_to_retry",
        0,
        2,
    )
    assert plain.reason == (
        "No recipient is left to retry. 2 recipients have an unknown outcome; include them "
        "explicitly to resend to them."
    )
    included = hostapp.retry.retry_eligibility(campaign, include_uncertain=True)
    assert (included.allowed, included.code, included.retryable, included.uncertain) == (
        True,
        None,
        2,
        2,
    )


def test_a_refusal_still_reports_every_figure(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    _make_uncertain(campaign)
    deadline = campaign.failed_at + timedelta(hours=24)
    with time_machine.travel(deadline.replace(tzinfo=UTC) + timedelta(seconds=1), tick=False):
        verdict = hostapp.retry.retry_eligibility(campaign, include_uncertain=True)
    assert verdict.as_dict() == {
        "allowed": False,
        "code": "window_expired",
        "reason": f"The retry window ended at {deadline:%Y-%m-%d %H:%M} UTC.",
        "deadline": f"{deadline:%Y-%m-%dT%H:%M:%S}Z",
        "attempts_left": 3,
        "retryable": 2,
        "uncertain": 2,
    }


def test_a_retry_is_allowed_at_the_exact_end_of_the_window(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    deadline = campaign.failed_at + timedelta(hours=24)
    with time_machine.travel(deadline.replace(tzinfo=UTC), tick=False):
        assert hostapp.retry.retry_eligibility(campaign).allowed is True
        attempt = hostapp.retry.retry(campaign)
    assert attempt.number == 2


def test_a_campaign_without_a_failure_time_has_no_window(web_app: Flask) -> None:
    campaign = set_columns(draft(), status=EmailStatus.FAILED, failed_at=None)
    verdict = hostapp.retry.retry_eligibility(campaign)
    assert (verdict.code, verdict.reason, verdict.deadline) == (
        "window_expired",
        "The retry window ended at an unknown time.",
        None,
    )


def test_a_sending_campaign_is_refused_with_its_code(web_app: Flask) -> None:
    campaign = set_columns(draft(), status=EmailStatus.SENDING)
    verdict = hostapp.retry.retry_eligibility(campaign)
    assert (verdict.allowed, verdict.code, verdict.reason) == (
        False,
        "already_sending",
        "The campaign is already sending.",
    )
