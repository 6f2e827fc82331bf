"""Mailgun's 403, 400 "is not allowed to send", 502 and 504 through a whole send: which
recipients end how, which batches are cancelled, what the campaign says, what a retry may do."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry import EmailStatus, TransitionRefused
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from tests import hostapp
from tests.helpers import batches, campaign_with, drain, emails, recipient_rows, reload

CONFIG = {
    "CAMPAIGN_RETRY_BATCH_SIZE": 2,
    "CAMPAIGN_RETRY_AUTO_RETRY": False,
    "CAMPAIGN_RETRY_BATCH_MAX_TRIES": 1,
}


@pytest.fixture
def send_app(make_app: Any) -> Any:
    app = make_app(**CONFIG)
    with app.app_context():
        yield app


def _outcomes(campaign: Any) -> dict[str, tuple[str, str | None]]:
    return {
        email: (row.status.value, row.failure_kind)
        for email, row in recipient_rows(campaign).items()
    }


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        (
            FaultRule(status=403, on_calls=frozenset({1})),
            "account or domain not allowed",
        ),
        (
            FaultRule(
                status=400,
                on_calls=frozenset({1}),
                message="Domain mg.example.test is not allowed to send: Free accounts are for "
                "test purposes only",
            ),
            "domain not allowed to send: Domain mg.example.test is not allowed to send",
        ),
    ],
    ids=["403", "not-allowed-to-send"],
)
def test_a_refused_account_halts_the_send_and_everyone_stays_retryable(
    send_app: Flask, mailgun: Any, rule: FaultRule, said: str
) -> None:
    mailgun.add_fault(rule)
    addresses = emails(6)
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(send_app)
    campaign = reload(campaign)
    assert mailgun.request_count == 1
    assert [b.status for b in batches(campaign)] == ["DONE", "CANCELLED", "CANCELLED"]
    assert _outcomes(campaign) == {
        email: (("FAILED", "fatal") if i < 2 else ("PENDING", None))
        for i, email in enumerate(addresses)
    }
    assert campaign.status is EmailStatus.FAILED
    assert campaign.failure_reason.startswith("Sending stopped:")
    assert said in campaign.failure_reason
    assert "4 never submitted" in campaign.failure_reason
    assert mailgun.accepted_emails() == {}
    # Once the account is fixed, one retry reaches all six, once each.
    verdict = hostapp.retry.retry_eligibility(campaign)
    assert (verdict.allowed, verdict.retryable) == (True, 6)
    hostapp.retry.retry(campaign)
    drain(send_app)
    assert reload(campaign).status is EmailStatus.SENT
    assert mailgun.accepted_emails() == {email: 1 for email in addresses}


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_error_leaves_its_batch_uncertain_and_the_rest_sent(
    send_app: Flask, mailgun: Any, status: int
) -> None:
    mailgun.add_fault(FaultRule(status=status, match=r"user00000[01]@"))
    addresses = emails(6)
    campaign = campaign_with(addresses)
    hostapp.retry.send(campaign)
    drain(send_app)
    campaign = reload(campaign)
    assert mailgun.request_count == 3  # a gateway error does not stop the other batches
    assert [b.status for b in batches(campaign)] == ["DONE", "DONE", "DONE"]
    assert _outcomes(campaign) == {
        email: (("UNCERTAIN", "uncertain") if i < 2 else ("SENT", None))
        for i, email in enumerate(addresses)
    }
    assert (campaign.status, campaign.successful_sends) == (EmailStatus.PARTIALLY_SENT, 4)
    assert mailgun.accepted_emails() == {email: 1 for email in addresses[2:]}
    # Mailgun may have them: a plain retry does not resend, it says why.
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.retry(campaign)
    assert refused.value.code == "nothing_to_retry"
    assert "2 recipients have an unknown outcome" in refused.value.reason
    mailgun.clear_faults()
    hostapp.retry.retry(campaign, include_uncertain=True)
    drain(send_app)
    assert reload(campaign).status is EmailStatus.SENT
    assert mailgun.accepted_emails() == {email: 1 for email in addresses}
