"""Campaign-level automatic retry: it stops at max_retries, never goes past the window, never
follows a fatal halt, and does nothing once the campaign moved on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.policy.auto_retry import plan_auto_retry, run_auto_retry
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, campaign_with, drain, emails, recipient_rows, reload
from tests.webapp import set_columns

#: Automatic retries on, one try per batch so a failed batch fails its recipients at once.
AUTO = {"CAMPAIGN_RETRY_BATCH_MAX_TRIES": 1, "CAMPAIGN_RETRY_AUTO_RETRY": True}


def _settled(campaign: Any) -> Any:
    def check() -> bool:
        now = reload(campaign)
        return now.status is not EmailStatus.SENDING and now.next_auto_retry_at is None

    return check


def test_automatic_retries_stop_at_max_retries(make_app: Any, mailgun: Any) -> None:
    app = make_app(**AUTO, CAMPAIGN_RETRY_MAX_RETRIES=2)
    with app.app_context():
        mailgun.add_fault(FaultRule(status=503))  # every call, every attempt
        campaign = campaign_with(emails(3))
        hostapp.retry.send(campaign)
        drain(app, until=_settled(campaign))
        campaign = reload(campaign)
        assert [(a.number, a.trigger, a.outcome) for a in attempts(campaign)] == [
            (1, "initial", "FAILED"),
            (2, "automatic", "FAILED"),
            (3, "automatic", "FAILED"),
        ]
        assert (campaign.status, campaign.retry_count, campaign.next_auto_retry_at) == (
            EmailStatus.FAILED,
            2,
            None,
        )
        assert mailgun.request_count == 3
        assert mailgun.accepted_emails() == {}


def test_no_automatic_retry_after_a_fatal_halt(make_app: Any, mailgun: Any) -> None:
    app = make_app(**AUTO, CAMPAIGN_RETRY_BATCH_SIZE=2)
    with app.app_context():
        # A transient failure first, then a fatal one halts the send.
        mailgun.add_fault(FaultRule(status=503, on_calls=frozenset({1})))
        mailgun.add_fault(FaultRule(status=401, on_calls=frozenset({2})))
        campaign = campaign_with(emails(6))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        [attempt] = attempts(campaign)
        assert attempt.halt_reason is not None
        assert {row.failure_kind for row in recipient_rows(campaign).values()} == {
            "transient",
            "fatal",
            None,
        }
        assert (campaign.status, campaign.next_auto_retry_at, campaign.retry_count) == (
            EmailStatus.FAILED,
            None,
            0,
        )
        assert get_state().queue(app).queue.scheduled_job_registry.get_job_ids() == []


def test_no_automatic_retry_planned_past_the_window(make_app: Any, mailgun: Any) -> None:
    app = make_app(**AUTO, CAMPAIGN_RETRY_WINDOW=timedelta(hours=1))
    with app.app_context():
        mailgun.add_fault(FaultRule(status=503))
        campaign = campaign_with(emails(2))
        state = get_state()
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        [attempt] = attempts(campaign)
        now = utcnow()
        # Failed 59 min 59 s ago: any backoff (at least the next second) lands past the end.
        campaign.failed_at = now - timedelta(minutes=59, seconds=59)
        status = EmailStatus.FAILED
        assert plan_auto_retry(state, campaign, attempt, status, now + timedelta(seconds=1)) is None
        campaign.failed_at = now
        planned = plan_auto_retry(state, campaign, attempt, status, now)
        assert planned is not None and now <= planned <= now + timedelta(seconds=1)
        campaign.retry_count = campaign.max_retries
        assert plan_auto_retry(state, campaign, attempt, status, now) is None
        hostapp.db.session.rollback()


def test_a_due_automatic_retry_past_the_window_is_refused_and_cleared(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_MAX_TRIES=1, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        mailgun.add_fault(FaultRule(status=503))
        campaign = campaign_with(emails(2))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = set_columns(
            campaign,
            failed_at=utcnow() - timedelta(hours=25),
            next_auto_retry_at=utcnow() - timedelta(minutes=1),
        )
        assert run_auto_retry(campaign.id) == "refused: window_expired"
        campaign = reload(campaign)
        assert (campaign.status, campaign.retry_count, campaign.next_auto_retry_at) == (
            EmailStatus.FAILED,
            0,
            None,
        )
        assert len(attempts(campaign)) == 1


def test_no_automatic_retry_once_the_campaign_moved_on(make_app: Any, mailgun: Any) -> None:
    app = make_app(**AUTO)
    with app.app_context():
        mailgun.add_fault(FaultRule(status=503, times=1))
        campaign = campaign_with(emails(2))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert campaign.next_auto_retry_at is not None
        # A person retries first: the manual retry clears the planned automatic one.
        hostapp.retry.retry(campaign)
        assert reload(campaign).next_auto_retry_at is None
        drain(app, until=lambda: reload(campaign).status is EmailStatus.SENT)
        assert run_auto_retry(campaign.id) == "not scheduled"
        campaign = reload(campaign)
        assert [a.trigger for a in attempts(campaign)] == ["initial", "manual"]
        assert (campaign.status, campaign.retry_count) == (EmailStatus.SENT, 1)
        assert mailgun.accepted_emails() == {email: 1 for email in emails(2)}


def test_an_automatic_retry_due_after_the_campaign_was_sent_is_refused(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_MAX_TRIES=1, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        campaign = campaign_with(emails(2))
        hostapp.retry.send(campaign)
        drain(app)
        # Still marked for an automatic retry although it ended SENT meanwhile.
        campaign = set_columns(campaign, next_auto_retry_at=utcnow())
        assert run_auto_retry(campaign.id) == "refused: not_retryable_status"
        campaign = reload(campaign)
        assert (campaign.next_auto_retry_at, campaign.retry_count) == (None, 0)
        assert len(attempts(campaign)) == 1
        assert run_auto_retry(987654) == "not scheduled"
