"""Who gets the email: exclusions end SKIPPED, duplicates are dropped, the list is frozen at the
first send, never-submitted recipients are retried, a raising message_builder fails the
campaign cleanly, and a SCHEDULED campaign sends like a DRAFT one."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from flask_campaign_retry import EmailStatus, FailureKind, RecipientStatus
from flask_campaign_retry.hooks import Hooks
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from tests import hostapp
from tests.helpers import attempts, batches, campaign_with, drain, emails, recipient_rows, reload
from tests.webapp import set_columns


def _statuses(campaign: Any) -> dict[str, str]:
    return {email: row.status.value for email, row in recipient_rows(campaign).items()}


def test_excluded_recipients_are_skipped_and_never_sent(
    app: Flask, mailgun: Any, hooks: Hooks
) -> None:
    addresses = emails(6)
    excluded = {addresses[1], addresses[4]}
    seen: list[list[str]] = []

    def exclude(campaign: Any, batch: list[str]) -> list[str]:
        seen.append(list(batch))
        return [email for email in batch if email in excluded]

    hooks.exclude_recipients = exclude
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert sorted(email for batch in seen for email in batch) == addresses
    assert _statuses(campaign) == {
        email: ("SKIPPED" if email in excluded else "SENT") for email in addresses
    }
    assert mailgun.accepted_emails() == {email: 1 for email in addresses if email not in excluded}
    # Skipped recipients are not counted against the campaign: it is SENT, 4 of 4.
    assert (campaign.status, campaign.successful_sends, campaign.total_recipients) == (
        EmailStatus.SENT,
        4,
        6,
    )
    [attempt] = attempts(campaign)
    assert (attempt.sent, attempt.skipped, attempt.failed, attempt.outcome) == (4, 2, 0, "SENT")


def test_everyone_excluded_ends_sent_with_nothing_submitted(
    app: Flask, mailgun: Any, hooks: Hooks
) -> None:
    hooks.exclude_recipients = lambda campaign, batch: batch
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert mailgun.request_count == 0
    assert set(_statuses(campaign).values()) == {"SKIPPED"}
    assert (campaign.status, campaign.successful_sends, campaign.failure_reason) == (
        EmailStatus.SENT,
        0,
        None,
    )
    assert campaign.failed_at is None


def test_exact_duplicate_addresses_are_sent_once(app: Flask, mailgun: Any) -> None:
    unique = emails(5)
    # Duplicates inside one chunk and across chunks (batch size 2 at the test's config below).
    listed = [
        unique[0],
        unique[1],
        unique[0],
        unique[2],
        unique[3],
        unique[1],
        unique[4],
        unique[4],
    ]
    campaign = campaign_with(listed)
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert sorted(recipient_rows(campaign)) == unique
    assert mailgun.accepted_emails() == {email: 1 for email in unique}
    assert (campaign.status, campaign.total_recipients, campaign.successful_sends) == (
        EmailStatus.SENT,
        5,
        5,
    )


def test_duplicates_across_batches_are_dropped(make_app: Any, mailgun: Any) -> None:
    with make_app(CAMPAIGN_RETRY_BATCH_SIZE=2).app_context():
        app = current_app._get_current_object()
        a, b, c = emails(3)
        campaign = campaign_with([a, b, a, c, b, a])
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert sorted(recipient_rows(campaign)) == [a, b, c]
        assert mailgun.accepted_emails() == {a: 1, b: 1, c: 1}
        assert (campaign.status, campaign.total_recipients) == (EmailStatus.SENT, 3)
        [attempt] = attempts(campaign)
        assert attempt.targeted == 3


def test_an_address_whose_domain_differs_only_in_case_is_one_recipient(
    app: Flask, mailgun: Any
) -> None:
    campaign = campaign_with(["ann@example.com", "ann@EXAMPLE.com", "ann@Example.Com"])
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.total_recipients == 1
    assert len(recipient_rows(campaign)) == 1
    assert sum(mailgun.accepted_emails().values()) == 1


def test_a_retry_resends_never_submitted_recipients(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        addresses = emails(6)
        mailgun.add_fault(FaultRule(status=401, times=1))  # fatal on the first call: halt
        campaign = campaign_with(addresses)
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        rows = recipient_rows(campaign)
        never_submitted = {email for email, row in rows.items() if row.status.value == "PENDING"}
        assert len(never_submitted) == 4
        assert campaign.status is EmailStatus.FAILED
        assert mailgun.accepted_emails() == {}
        hostapp.retry.retry(campaign)
        drain(app)
        campaign = reload(campaign)
        # The two fatal failures and the four never submitted: everyone, once.
        assert mailgun.accepted_emails() == {email: 1 for email in addresses}
        assert set(_statuses(campaign).values()) == {"SENT"}
        assert campaign.status is EmailStatus.SENT


def test_a_retry_uses_the_list_frozen_at_the_first_send(web_app: Flask, mailgun: Any) -> None:
    addresses = emails(4, prefix="main")
    mailgun.add_fault(FaultRule(status=500, match=r"main00000[01]@"))
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(web_app)
    mailgun.clear_faults()
    # Subscribers added to (and removed from) the host's list after the first send.
    hostapp.add_subscribers("main", ["late1@example.com", "late2@example.com"])
    hostapp.db.session.query(hostapp.Subscriber).filter_by(email=addresses[0]).update(
        {"unsubscribed": True}
    )
    hostapp.db.session.commit()
    hostapp.retry.retry(campaign)
    drain(web_app)
    campaign = reload(campaign)
    assert sorted(recipient_rows(campaign)) == addresses
    assert mailgun.accepted_emails() == {email: 1 for email in addresses}
    assert (campaign.status, campaign.total_recipients) == (EmailStatus.SENT, 4)
    [first, second] = attempts(campaign)
    assert (first.targeted, second.targeted) == (4, 2)


def test_a_raising_message_builder_fails_the_campaign_with_its_reason(
    app: Flask, mailgun: Any, hooks: Hooks
) -> None:
    def broken(campaign: Any) -> Any:
        raise ValueError("no template named 'weekly'")

    hooks.message_builder = broken
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert mailgun.request_count == 0
    assert campaign.status is EmailStatus.FAILED
    assert "the message_builder raised ValueError: no template named 'weekly'" in (
        campaign.failure_reason
    )
    assert batches(campaign) == []
    [attempt] = attempts(campaign)
    assert attempt.ended_at is not None
    assert (
        attempt.halt_reason == "the message_builder raised ValueError: no template named 'weekly'"
    )


def test_a_raising_exclude_hook_halts_the_send_with_its_reason(
    make_app: Any, mailgun: Any, hooks: Hooks
) -> None:
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False, CAMPAIGN_RETRY_BATCH_MAX_TRIES=1)
    with app.app_context():

        def exclude(campaign: Any, batch: list[str]) -> list[str]:
            raise RuntimeError("suppression list unavailable")

        hooks.exclude_recipients = exclude
        campaign = campaign_with(emails(2))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert mailgun.request_count == 0
        reason = "the host's hook raised RuntimeError: suppression list unavailable"
        assert campaign.status is EmailStatus.FAILED
        assert campaign.failure_reason.startswith(f"Sending stopped: {reason}.")
        assert {
            (row.status, row.failure_kind, row.error_message)
            for row in recipient_rows(campaign).values()
        } == {(RecipientStatus.FAILED, FailureKind.FATAL.value, reason)}


def test_a_scheduled_campaign_sends_like_a_draft(app: Flask, mailgun: Any) -> None:
    addresses = emails(3)
    campaign = set_columns(campaign_with(addresses), status=EmailStatus.SCHEDULED)
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.SENT
    assert mailgun.accepted_emails() == {email: 1 for email in addresses}
    [attempt] = attempts(campaign)
    assert attempt.trigger == "initial"


def test_failure_kind_of_a_fatal_halt_is_retryable(make_app: Any, mailgun: Any) -> None:
    """FATAL failures (reached nobody) count as retryable in retry_eligibility()."""
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        mailgun.add_fault(FaultRule(status=401, times=1))
        campaign = campaign_with(emails(4))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        kinds = sorted(
            (row.status.value, row.failure_kind) for row in recipient_rows(campaign).values()
        )
        assert kinds == [
            ("FAILED", FailureKind.FATAL.value),
            ("FAILED", FailureKind.FATAL.value),
            ("PENDING", None),
            ("PENDING", None),
        ]
        verdict = hostapp.retry.retry_eligibility(campaign)
        assert (verdict.allowed, verdict.retryable, verdict.uncertain) == (True, 4, 0)
