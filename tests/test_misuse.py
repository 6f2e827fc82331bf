"""Misuse gets clear exceptions and changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_campaign_retry import (
    CampaignRetry,
    ConfigurationError,
    EmailStatus,
    NotInitializedError,
    TransitionRefused,
)
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, campaign_with, drain, emails, reload


def test_init_app_twice_on_one_app_is_an_error(app: Flask) -> None:
    with pytest.raises(ConfigurationError, match="already initialised"):
        hostapp.retry.init_app(app, db=hostapp.db, campaign_model=hostapp.Campaign)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("CAMPAIGN_RETRY_BATCH_SIZE", 0, "between 1 and 1000"),
        ("CAMPAIGN_RETRY_BATCH_SIZE", 1001, "between 1 and 1000"),
        ("CAMPAIGN_RETRY_BATCH_SIZE", "100", "must be an integer"),
        ("CAMPAIGN_RETRY_MAX_RETRIES", -1, "between 0 and 100"),
        ("CAMPAIGN_RETRY_WINDOW", timedelta(0), "must be positive"),
        ("CAMPAIGN_RETRY_WINDOW", "24h", "seconds or a timedelta"),
        ("CAMPAIGN_RETRY_BACKOFF_CAP", 1.0, "must not be below"),
        ("CAMPAIGN_RETRY_AUTO_RETRY", "yes", "True or False"),
        ("CAMPAIGN_RETRY_REDIS_URL", "localhost:6379", "redis://"),
        ("CAMPAIGN_RETRY_QUEUE", "bad queue!", "CAMPAIGN_RETRY_QUEUE"),
        ("CAMPAIGN_RETRY_URL_PREFIX", "campaigns", "start with '/'"),
        ("CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS", ["https://hooks.example.com/x"], "SECRET"),
    ],
)
def test_bad_config_values_fail_init_with_a_fix_it_message(
    key: str, value: Any, message: str
) -> None:
    app = Flask("bad")
    app.config[key] = value
    with pytest.raises(ConfigurationError, match=message) as raised:
        CampaignRetry(app, db=SQLAlchemy(), campaign_model=hostapp.Campaign)
    assert key.split("_")[-1] in str(raised.value) or key in str(raised.value)
    assert "campaign_retry" not in app.extensions


def test_init_app_needs_db_and_a_mixin_model() -> None:
    with pytest.raises(ConfigurationError, match="db="):
        CampaignRetry().init_app(Flask("x"), db=None, campaign_model=hostapp.Campaign)
    with pytest.raises(ConfigurationError, match="CampaignMixin"):
        CampaignRetry().init_app(Flask("x"), db=hostapp.db, campaign_model=hostapp.Subscriber)


def test_missing_hooks_refuse_to_send_and_change_nothing(app: Flask) -> None:
    bare = CampaignRetry()
    other = Flask("other")
    other.config.update(
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        CAMPAIGN_RETRY_REDIS_URL=app.config["CAMPAIGN_RETRY_REDIS_URL"],
        CAMPAIGN_RETRY_PROVIDER="sandbox",
    )
    hostapp.db.init_app(other)
    bare.init_app(other, db=hostapp.db, campaign_model=hostapp.Campaign)
    campaign_id = campaign_with(emails(3)).id
    with other.app_context():
        campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
        with pytest.raises(
            ConfigurationError, match=r"recipients_loader and @retry\.message_builder"
        ):
            bare.send(campaign)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.DRAFT
    assert attempts(campaign) == []


def test_using_the_extension_on_an_app_it_does_not_know(app: Flask) -> None:
    with Flask("stranger").app_context(), pytest.raises(NotInitializedError, match="init_app"):
        hostapp.retry.send(object())
    with pytest.raises(NotInitializedError, match="another CampaignRetry"):
        CampaignRetry().send(object())


def test_outside_an_app_context() -> None:
    with pytest.raises(NotInitializedError, match="application context"):
        hostapp.retry.send(object())


def test_sending_a_campaign_that_is_already_sending_is_refused(app: Flask, mailgun: Any) -> None:
    campaign = campaign_with(emails(5))
    hostapp.retry.send(campaign)
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.send(campaign)
    assert refused.value.code == "already_sending"
    assert len(attempts(campaign)) == 1
    drain(app)
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.send(campaign)
    assert refused.value.code == "not_sendable"
    assert "use retry" in refused.value.reason
    assert len(attempts(campaign)) == 1
    assert mailgun.request_count == 1


def test_a_loader_that_raises_fails_the_campaign_with_its_reason(app: Flask) -> None:
    original = hostapp.retry.hooks.recipients_loader

    def broken(campaign: Any) -> Any:
        yield "first@example.com"
        raise RuntimeError("subscriber service is down")

    hostapp.retry.recipients_loader(broken)
    try:
        campaign = hostapp.new_campaign("none")
        hostapp.retry.send(campaign)
        drain(app)
    finally:
        hostapp.retry.recipients_loader(original)  # type: ignore[arg-type]
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert "subscriber service is down" in campaign.failure_reason
    recipients = get_state().models.recipient.__table__
    count = hostapp.db.session.execute(sa.select(sa.func.count()).select_from(recipients)).scalar()
    assert count == 0  # the half-read snapshot was rolled back


def test_an_empty_recipient_list_fails_with_a_reason(app: Flask) -> None:
    campaign = hostapp.new_campaign("nobody")
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert campaign.failure_reason == "Sending stopped: the recipient list was empty."
