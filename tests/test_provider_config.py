"""A misconfigured provider is refused at ``init_app``; one that still cannot be built in a
worker ends the campaign FAILED (fatal, retryable once fixed), never stuck in SENDING."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_campaign_retry import CampaignRetry, EmailStatus
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import campaign_with, drain, emails, recipient_rows, reload


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"CAMPAIGN_RETRY_PROVIDER": "mailgn"},
            r"CAMPAIGN_RETRY_PROVIDER 'mailgn' is neither a built-in provider "
            r"\(mailgun, sandbox, smtp\)",
        ),
        (
            {"CAMPAIGN_RETRY_PROVIDER": "no.such.module:Provider"},
            r"CAMPAIGN_RETRY_PROVIDER 'no.such.module:Provider': cannot import 'no.such.module'",
        ),
        (
            {"CAMPAIGN_RETRY_PROVIDER": "mailgun", "MAILGUN_DOMAIN": "mg.example.com"},
            r"MAILGUN_API_KEY .*Mailgun private API key",
        ),
        (
            {"CAMPAIGN_RETRY_PROVIDER": "mailgun", "MAILGUN_API_KEY": "key-x"},
            r"MAILGUN_DOMAIN .*sending domain",
        ),
    ],
)
def test_a_provider_that_cannot_be_built_fails_init_app(
    config: dict[str, Any], message: str
) -> None:
    app = Flask("misconfigured")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", **config)
    with pytest.raises(ConfigurationError, match=message):
        CampaignRetry(app, db=SQLAlchemy(), campaign_model=hostapp.Campaign)
    assert "campaign_retry" not in app.extensions


def test_a_provider_that_breaks_in_the_worker_fails_the_campaign_with_the_reason(
    app: Flask, mailgun: Any
) -> None:
    state = get_state()
    campaign = campaign_with(emails(5))
    # The web process built its provider at init_app; the worker's configuration lost the key.
    state._provider = None
    app.config["MAILGUN_API_KEY"] = None
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert campaign.failure_reason is not None
    # The attempt's preparation asks the provider to check the message first, so the missing
    # key stops the campaign there, before any batch.
    assert campaign.failure_reason.startswith(
        "Sending stopped: the provider cannot be used: MAILGUN_API_KEY is not set: set it to"
    )
    assert ".." not in campaign.failure_reason
    assert recipient_rows(campaign) == {}  # stopped before the list was frozen
    assert mailgun.request_count == 0

    # Fixed: Retry Send reaches everyone, once.
    app.config["MAILGUN_API_KEY"] = mailgun.api_key
    hostapp.retry.retry(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.SENT
    assert mailgun.accepted_emails() == {address: 1 for address in emails(5)}
