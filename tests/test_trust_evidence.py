"""Evidence that arrives after an attempt ended (Mailgun webhooks, reconciliation) reaches the
campaign: status, successful_sends and failure_reason follow the recipients, with one recount
for a burst of events (issue 11.7). SQLite and PostgreSQL, real Redis, the fake Mailgun."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.engine import refresh_job
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.reconciliation.reconcile import reconcile_uncertain
from flask_campaign_retry.state import get_state
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from flask_campaign_retry.testing.mailgun_webhooks import signed_webhook
from tests import hostapp
from tests.helpers import campaign_with, drain, emails, recipient_rows, reload

KEY = "trust-evidence-signing-key"
PATH = "/campaigns/webhooks/mailgun"
ADDRESSES = emails(4, prefix="ev")


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(
        CAMPAIGN_RETRY_AUTO_RETRY=False,
        CAMPAIGN_RETRY_READ_TIMEOUT=0.3,
        MAILGUN_WEBHOOK_SIGNING_KEY=KEY,
    )
    with app.app_context():
        yield app


@pytest.fixture
def recounts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every recount the refresh job makes."""
    calls: list[Any] = []
    real = refresh_job.refresh_campaign_status

    def counted(state: Any, campaign_id: Any) -> Any:
        calls.append(campaign_id)
        return real(state, campaign_id)

    monkeypatch.setattr(refresh_job, "refresh_campaign_status", counted)
    return calls


def uncertain_campaign(app: Flask, mailgun: FakeMailgun) -> Any:
    """Accepted by Mailgun, but the answer timed out: 4 UNCERTAIN recipients, campaign FAILED."""
    mailgun.add_fault(FaultRule(accept_then_hang=True, hang=0.8))
    campaign = campaign_with(ADDRESSES, list_name="ev")
    hostapp.retry.send(campaign)
    drain(app)
    mailgun.clear_faults()
    campaign = reload(campaign)
    assert {r.status for r in recipient_rows(campaign).values()} == {RecipientStatus.UNCERTAIN}
    assert campaign.status is EmailStatus.FAILED
    assert campaign.failure_reason.startswith("4 of 4 recipients did not get the email")
    return campaign


def refreshed(campaign: Any) -> Callable[[], bool]:
    return lambda: reload(campaign).status is not EmailStatus.FAILED


def test_delivered_webhooks_make_the_campaign_sent_with_one_recount(
    app: Flask, mailgun: FakeMailgun, recounts: list[Any]
) -> None:
    campaign = uncertain_campaign(app, mailgun)
    client = app.test_client()
    for address in ADDRESSES:
        body = signed_webhook(mailgun.events.deliver(address), KEY)
        assert client.post(PATH, json=body).get_json()["status"] == "changed"

    drain(app, until=refreshed(campaign))
    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends, campaign.delivered_count) == (
        EmailStatus.SENT,
        4,
        4,
    )
    assert campaign.failure_reason is None
    assert campaign.failed_at is None
    assert recounts == [campaign.id]  # four events, one recount


def test_some_deliveries_make_it_partially_sent_with_an_updated_reason(
    app: Flask, mailgun: FakeMailgun, recounts: list[Any]
) -> None:
    campaign = uncertain_campaign(app, mailgun)
    client = app.test_client()
    body = signed_webhook(mailgun.events.deliver(ADDRESSES[0]), KEY)
    assert client.post(PATH, json=body).get_json()["status"] == "changed"

    drain(app, until=refreshed(campaign))
    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends) == (EmailStatus.PARTIALLY_SENT, 1)
    assert campaign.failure_reason.startswith("3 of 4 recipients did not get the email")


def test_a_reconciliation_outside_the_sweep_refreshes_the_campaign(
    app: Flask, mailgun: FakeMailgun, recounts: list[Any]
) -> None:
    campaign = uncertain_campaign(app, mailgun)
    for address in ADDRESSES:
        mailgun.events.deliver(address)
    reconcile_uncertain(get_state(), campaign.id, settle_seconds=0)

    drain(app, until=refreshed(campaign))
    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends) == (EmailStatus.SENT, 4)
    assert campaign.failure_reason is None
    assert recounts == [campaign.id]
