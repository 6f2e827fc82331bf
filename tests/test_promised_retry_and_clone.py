"""The retry window and its configuration, retry_eligibility(), and clones: which recipients an
only_unsent clone holds and reaches, and which columns @retry.clone_fields copies."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask

from flask_campaign_retry import ConfigurationError, EmailStatus, TransitionRefused
from flask_campaign_retry.campaign_fields import column_name
from flask_campaign_retry.hooks import Hooks
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, drain, recipient_rows, reload
from tests.webapp import WEB_CONFIG, partially_sent, set_columns


def _refusal(campaign: Any) -> tuple[str, str]:
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.retry(campaign)
    return refused.value.code, refused.value.reason


def _at(moment: Any) -> Any:
    return time_machine.travel(moment.replace(tzinfo=UTC), tick=False)


def test_a_failed_retry_does_not_extend_the_window(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    first_failure = campaign.failed_at
    deadline = first_failure + timedelta(hours=24)
    mailgun.add_fault(FaultRule(status=500))
    with _at(first_failure + timedelta(hours=23)):
        hostapp.retry.retry(campaign)
        drain(web_app)
    campaign = reload(campaign)
    assert (campaign.status, campaign.retry_count) == (EmailStatus.PARTIALLY_SENT, 1)
    assert campaign.failed_at == first_failure
    assert campaign.last_attempt_at == first_failure + timedelta(hours=23)
    with _at(deadline + timedelta(seconds=1)):
        assert _refusal(campaign) == (
            "window_expired",
            f"The retry window ended at {deadline:%Y-%m-%d %H:%M} UTC.",
        )


def test_a_custom_window_is_applied(make_app: Any, mailgun: Any) -> None:
    app = make_app(**WEB_CONFIG, CAMPAIGN_RETRY_WINDOW=timedelta(hours=2))
    with app.app_context():
        campaign = partially_sent(app, mailgun)
        deadline = campaign.failed_at + timedelta(hours=2)
        with _at(deadline + timedelta(seconds=1)):
            verdict = hostapp.retry.retry_eligibility(campaign)
            assert (verdict.allowed, verdict.code, verdict.deadline) == (
                False,
                "window_expired",
                deadline,
            )
            assert _refusal(campaign)[0] == "window_expired"
        with _at(deadline - timedelta(seconds=1)):
            attempt = hostapp.retry.retry(campaign)
        assert attempt.number == 2


def test_a_window_given_in_seconds_is_accepted(make_app: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_WINDOW=90)
    assert get_state(app).settings.window == timedelta(seconds=90)


def test_retry_eligibility_reports_every_figure(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    verdict = hostapp.retry.retry_eligibility(campaign)
    deadline = campaign.failed_at + timedelta(hours=24)
    assert verdict.as_dict() == {
        "allowed": True,
        "code": None,
        "reason": None,
        "deadline": f"{deadline:%Y-%m-%dT%H:%M:%S}Z",
        "attempts_left": 3,
        "retryable": 2,
        "uncertain": 0,
    }
    campaign = set_columns(campaign, retry_count=3)
    verdict = hostapp.retry.retry_eligibility(campaign)
    assert (verdict.allowed, verdict.code, verdict.attempts_left, verdict.retryable) == (
        False,
        "no_attempts_left",
        0,
        2,
    )
    assert verdict.reason == "No retry attempts left (all 3 used)."
    campaign = set_columns(campaign, retry_count=0, status=EmailStatus.SENT)
    verdict = hostapp.retry.retry_eligibility(campaign)
    assert (verdict.code, verdict.reason) == (
        "not_retryable_status",
        "Only FAILED or PARTIALLY_SENT campaigns can be retried; this one is SENT.",
    )


def _mark(campaign: Any, statuses: dict[str, str]) -> None:
    table = get_state().models.recipient.__table__
    for email, status in statuses.items():
        hostapp.db.session.execute(
            sa.update(table)
            .where(table.c.campaign_id == campaign.id, table.c.email == email)
            .values(status=status)
        )
    hostapp.db.session.commit()


def test_an_only_unsent_clone_holds_and_reaches_exactly_the_unsent(
    web_app: Flask, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)  # main000000, main000001 FAILED transient
    _mark(
        campaign,
        {
            "main000002@example.com": "DELIVERED",
            "main000003@example.com": "UNCERTAIN",
            "main000004@example.com": "SKIPPED",
        },
    )  # main000005 stays SENT
    unsent = {f"main00000{i}@example.com" for i in (0, 1, 3)}
    copy = hostapp.retry.clone(reload(campaign), only_unsent=True)
    assert (copy.status, copy.cloned_from_id, copy.total_recipients) == (
        EmailStatus.DRAFT,
        campaign.id,
        3,
    )
    rows = recipient_rows(copy)
    assert set(rows) == unsent
    assert {row.status.value for row in rows.values()} == {"PENDING"}
    assert rows["main000000@example.com"].variables == {"first_name": "n0"}
    hostapp.add_subscribers("main", ["late@example.com"])  # the clone's list is already frozen
    before = mailgun.accepted_emails()
    hostapp.retry.send(copy)
    drain(web_app)
    after = mailgun.accepted_emails()
    assert {email: after[email] - before.get(email, 0) for email in after} == {
        email: 1 for email in unsent
    } | {email: 0 for email in after if email not in unsent}
    copy = reload(copy)
    assert (copy.status, copy.successful_sends) == (EmailStatus.SENT, 3)
    assert reload(campaign).status is EmailStatus.PARTIALLY_SENT  # the original is untouched


def test_an_only_unsent_clone_of_a_fully_received_campaign_is_refused(
    web_app: Flask, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    _mark(campaign, {f"main00000{i}@example.com": "SENT" for i in (0, 1)})
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.clone(reload(campaign), only_unsent=True)
    assert refused.value.code == "nothing_unsent"


def test_a_full_clone_copies_host_columns_and_resets_the_mixin(
    web_app: Flask, mailgun: Any
) -> None:
    campaign = set_columns(partially_sent(web_app, mailgun), subject="Custom", retry_count=2)
    copy = hostapp.retry.clone(campaign)
    assert (copy.name, copy.list_name, copy.subject, copy.html) == (
        campaign.name,
        "main",
        "Custom",
        campaign.html,
    )
    assert (copy.status, copy.retry_count, copy.failed_at, copy.total_recipients) == (
        EmailStatus.DRAFT,
        0,
        None,
        0,
    )
    assert recipient_rows(copy) == {}
    assert copy.id != campaign.id


def test_clone_fields_chooses_the_copied_columns(
    web_app: Flask, mailgun: Any, hooks: Hooks
) -> None:
    mixin = [column_name(hostapp.Campaign, "status"), column_name(hostapp.Campaign, "retry_count")]
    hooks.clone_fields = lambda campaign: ["name", "list_name", *mixin]
    campaign = set_columns(partially_sent(web_app, mailgun), subject="Custom", name="Weekly")
    copy = hostapp.retry.clone(campaign)
    # subject was not listed: the column default; mixin columns listed are ignored.
    assert (copy.name, copy.list_name, copy.subject) == (
        "Weekly",
        "main",
        "Hello %recipient.first_name%",
    )
    assert (copy.status, copy.retry_count) == (EmailStatus.DRAFT, 0)


def test_clone_fields_naming_an_unknown_column_is_a_configuration_error(
    web_app: Flask, mailgun: Any, hooks: Hooks
) -> None:
    hooks.clone_fields = lambda campaign: ["name", "no_such_column"]
    campaign = partially_sent(web_app, mailgun)
    count = len(attempts(campaign))
    with pytest.raises(ConfigurationError, match=r"\['no_such_column'\]"):
        hostapp.retry.clone(campaign)
    hostapp.db.session.rollback()
    assert hostapp.db.session.query(hostapp.Campaign).count() == 1
    assert len(attempts(campaign)) == count
