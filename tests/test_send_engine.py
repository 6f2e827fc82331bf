"""The send engine end to end: real Redis, RQ, the fake Mailgun on loopback, SQLite and
PostgreSQL (every test runs on both through the ``app`` fixture)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.statuses import BatchStatus
from tests import hostapp
from tests.helpers import (
    attempts,
    batches,
    campaign_with,
    drain,
    emails,
    recipient_rows,
    reload,
    status_counts,
)


def test_all_batches_accepted_ends_sent(app: Flask, mailgun: Any) -> None:
    addresses = emails(2500)
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.SENT
    assert campaign.successful_sends == 2500
    assert campaign.total_recipients == 2500
    assert campaign.failed_at is None and campaign.failure_reason is None
    assert mailgun.request_count == 3  # 1,000 + 1,000 + 500
    assert mailgun.accepted_emails() == {address: 1 for address in addresses}
    assert status_counts(campaign) == {"SENT": 2500}
    [attempt] = attempts(campaign)
    assert (attempt.targeted, attempt.sent, attempt.failed, attempt.outcome) == (
        2500,
        2500,
        0,
        "SENT",
    )
    assert attempt.ended_at is not None


def test_one_batch_500_and_a_refused_pattern_end_partially_sent(
    make_app: Any, mailgun: Any
) -> None:
    with make_app(CAMPAIGN_RETRY_AUTO_RETRY=False).app_context():
        _partially_sent(mailgun)


def _partially_sent(mailgun: Any) -> None:
    app = current_app._get_current_object()
    good = emails(2500)
    # Three addresses in the last batch that Mailgun refuses with a batch-wide 400.
    refused = {
        good[2100]: "refused1@bounce.example.com",
        good[2200]: "refused2@bounce.example.com",
        good[2300]: "refused3@bounce.example.com",
    }
    addresses = [refused.get(address, address) for address in good]
    mailgun.add_fault(FaultRule(status=500, on_calls=frozenset({2}), times=1))
    mailgun.add_fault(FaultRule(match=r"@bounce\.example\.com$", reject_addresses=True))
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(app)

    campaign = reload(campaign)
    rows = recipient_rows(campaign)
    assert campaign.status is EmailStatus.PARTIALLY_SENT
    second_batch = set(addresses[1000:2000])
    for email, row in rows.items():
        if email in second_batch:
            assert (row.status, row.failure_kind, row.error_code) == (
                RecipientStatus.FAILED,
                "transient",
                500,
            ), email
        elif email in refused.values():
            assert (row.status, row.failure_kind, row.error_code) == (
                RecipientStatus.FAILED,
                "permanent",
                400,
            ), email
        else:
            assert row.status is RecipientStatus.SENT, email
            assert row.provider_message_id
    assert campaign.successful_sends == 2500 - 1000 - 3
    assert campaign.failed_at is not None
    reason = campaign.failure_reason
    assert reason.startswith("1,003 of 2,500 recipients did not get the email")
    assert "1,000 temporary failure (HTTP 500" in reason
    assert "3 rejected" in reason and "not a valid address" in reason
    accepted = mailgun.accepted_emails()
    assert set(accepted) == {e for e, r in rows.items() if r.status is RecipientStatus.SENT}
    assert max(accepted.values()) == 1


def test_every_batch_failing_ends_failed_with_failed_at(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        _all_failed(app, mailgun)


def _all_failed(app: Flask, mailgun: Any) -> None:
    mailgun.add_fault(FaultRule(status=503))
    campaign = campaign_with(emails(1500))
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert campaign.failed_at is not None
    assert campaign.successful_sends == 0
    assert "1,500 of 1,500 recipients did not get the email" in campaign.failure_reason
    assert status_counts(campaign) == {"FAILED": 1500}
    assert mailgun.accepted_emails() == {}


def test_one_refused_address_in_a_full_batch_does_not_sink_the_other_999(
    app: Flask, mailgun: Any
) -> None:
    addresses = emails(1000)
    addresses[637] = "nobody@refused.example.org"
    mailgun.add_fault(FaultRule(match=r"@refused\.example\.org$", reject_addresses=True))
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(app)
    rows = recipient_rows(campaign)
    assert rows["nobody@refused.example.org"].status is RecipientStatus.FAILED
    assert rows["nobody@refused.example.org"].failure_kind == "permanent"
    accepted = mailgun.accepted_emails()
    assert len(accepted) == 999 and set(accepted.values()) == {1}
    assert "nobody@refused.example.org" not in accepted
    assert reload(campaign).successful_sends == 999
    # Halving isolates one address in about 2*log2(1000) calls, not 1,000.
    assert mailgun.request_count <= 25


def test_syntactically_invalid_addresses_never_reach_the_provider(app: Flask, mailgun: Any) -> None:
    addresses = [*emails(10), "not-an-address", "two@@example.com"]
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(app)
    rows = recipient_rows(campaign)
    for bad in ("not-an-address", "two@@example.com"):
        assert rows[bad].status is RecipientStatus.FAILED
        assert rows[bad].error_message.startswith("invalid address")
    assert mailgun.request_count == 1
    assert set(mailgun.accepted_emails()) == set(addresses[:10])
    assert reload(campaign).status is EmailStatus.PARTIALLY_SENT


def test_one_http_request_per_batch_attempt_on_429_and_timeouts(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=10,
        CAMPAIGN_RETRY_READ_TIMEOUT=0.5,
        CAMPAIGN_RETRY_AUTO_RETRY=False,
    )
    with app.app_context():
        # The 429's resume time also pauses the other batches (quota), for one second.
        mailgun.add_fault(FaultRule(status=429, resume_in=1, match=r"^user00000\d@", times=1))
        mailgun.add_fault(FaultRule(status=500, match=r"^user00001\d@", times=1))
        mailgun.add_fault(FaultRule(hang=2.0, match=r"^user00002\d@", times=1))
        campaign = campaign_with(emails(40))
        hostapp.retry.send(campaign)
        drain(app, until=lambda: reload(campaign).status is not EmailStatus.SENDING)
        assert mailgun.request_count == 4  # the SDK's own retries are off
        found = {b.seq: b for b in batches(campaign)}
        assert (found[0].error_code, found[0].error_kind) == (429, "transient")
        assert (found[1].error_code, found[1].error_kind) == (500, "transient")
        assert found[2].error_kind == "uncertain"
        assert found[3].status == BatchStatus.DONE and found[3].sent == 10
        counts = status_counts(campaign)
        assert counts == {"FAILED": 20, "UNCERTAIN": 10, "SENT": 10}


def test_401_stops_the_campaign_after_the_first_batch(make_app: Any, mailgun: Any) -> None:
    app = make_app(MAILGUN_API_KEY="wrong-key-0000", CAMPAIGN_RETRY_BATCH_SIZE=100)
    with app.app_context():
        campaign = campaign_with(emails(500))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert mailgun.request_count == 1
        assert campaign.status is EmailStatus.FAILED
        assert "API key" in campaign.failure_reason
        assert campaign.failure_reason.startswith("Sending stopped:")
        assert "400 never submitted" in campaign.failure_reason
        states = [b.status for b in batches(campaign)]
        assert states == ["DONE"] + ["CANCELLED"] * 4
        assert status_counts(campaign) == {"FAILED": 100, "PENDING": 400}
