"""Refusals and spellings of the configuration loader and the panel's text helpers that no
other test reaches: admin webhook URLs given as None, one string or a non-URL; a provider
that is not a name; the panel's times and countdowns at each unit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from flask_campaign_retry.config import DEFAULTS, load_settings
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.web.panel_text import display_time, remaining_text


def _settings(**overrides: Any) -> Any:
    return load_settings({**DEFAULTS, **overrides})


def test_admin_webhook_urls_may_be_none_or_one_string() -> None:
    assert _settings(CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS=None).admin_webhook_urls == ()
    one = _settings(
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS="https://hooks.example.com/a",
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET="s3cret",
    )
    assert one.admin_webhook_urls == ("https://hooks.example.com/a",)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com", 42])
def test_an_admin_webhook_url_that_is_not_http_is_refused_by_name(url: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        _settings(
            CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS=["https://ok.example.com", url],
            CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET="s3cret",
        )
    assert str(raised.value) == (
        f"CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS must hold http(s) URLs, got {url!r}."
    )


@pytest.mark.parametrize("provider", ["", None, 3])
def test_a_provider_that_is_not_a_name_is_refused(provider: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        _settings(CAMPAIGN_RETRY_PROVIDER=provider)
    assert str(raised.value) == (
        "CAMPAIGN_RETRY_PROVIDER must be 'mailgun', 'sandbox' or a dotted path "
        f"'package.module:Class', got {provider!r}."
    )


def test_the_panel_shows_times_from_datetimes_iso_strings_or_nothing() -> None:
    assert display_time(None) == ""
    assert display_time(datetime(2026, 11, 29, 9, 27, 41)) == "2026-11-29 09:27 UTC"
    assert display_time("2026-11-29T09:27:41Z") == "2026-11-29 09:27 UTC"
    assert display_time("2026-11-29T09:27:41") == "2026-11-29 09:27 UTC"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(hours=23, minutes=5, seconds=59), "23 h 5 min"),
        (timedelta(hours=1), "1 h 0 min"),
        (timedelta(minutes=4, seconds=30), "4 min"),
        (timedelta(seconds=59), "59 s"),
        (timedelta(seconds=0), "0 s"),
        (timedelta(seconds=-5), "0 s"),
    ],
)
def test_the_countdown_names_its_largest_unit(delta: timedelta, text: str) -> None:
    assert remaining_text(delta) == text
