"""The panel's own stylesheet, its opt-out, the flash categories, and the pager's anchor."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry import ConfigurationError
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from tests.webapp import (
    WEB_CONFIG,
    add_host_pages,
    csrf_token,
    draft,
    flashes,
    sent_with_faults,
    set_columns,
)

LINK = re.compile(r'<link rel="stylesheet" href="([^"]+)">')


@contextmanager
def _web_app(make_app: Callable[..., Flask], **config: Any) -> Iterator[Flask]:
    app = make_app(**{**WEB_CONFIG, **config})
    add_host_pages(app)
    with app.app_context():
        yield app


def test_the_panel_links_a_stylesheet_whose_every_rule_is_scoped_to_the_panel(
    make_app: Callable[..., Flask], authorize: Any
) -> None:
    with _web_app(make_app) as app:
        client = app.test_client()
        campaign = draft()
        html = client.get(f"/host/campaigns/{campaign.id}").get_data(as_text=True)
        links = LINK.findall(html)
        response = client.get(links[0])
    assert links == ["/campaigns/_campaign_retry_static/campaign_retry/panel.css"]
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    css = re.sub(r"/\*.*?\*/", "", response.get_data(as_text=True), flags=re.S)
    selectors = [
        selector.strip()
        for block in css.split("}")
        if "{" in block
        for selector in block.split("{")[0].split(",")
    ]
    assert len(selectors) > 20
    unscoped = [s for s in selectors if not s.startswith(".cr-panel")]
    assert unscoped == []


def test_the_stylesheet_can_be_turned_off(make_app: Callable[..., Flask], authorize: Any) -> None:
    with _web_app(make_app, CAMPAIGN_RETRY_PANEL_STYLESHEET=False) as app:
        campaign = draft()
        html = app.test_client().get(f"/host/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'class="cr-panel' in html
    assert LINK.findall(html) == []


def test_flash_categories_follow_the_host_config(
    make_app: Callable[..., Flask], authorize: Any
) -> None:
    categories = {"success": "ok", "error": "danger"}
    with _web_app(make_app, CAMPAIGN_RETRY_FLASH_CATEGORIES=categories) as app:
        client = app.test_client()
        campaign = draft()
        token = csrf_token(client)
        first = client.post(f"/campaigns/{campaign.id}/send", data={"csrf_token": token})
        assert first.status_code == 303
        assert [category for category, _ in flashes(client)] == ["ok"]
        with client.session_transaction() as session:  # start the second click clean
            session.pop("_flashes", None)
        again = client.post(f"/campaigns/{campaign.id}/send", data={"csrf_token": token})
        assert again.status_code == 303
        ((category, message),) = flashes(client)
        assert category == "danger"
        assert message.startswith(f"Campaign {campaign.id} is SENDING; only DRAFT or SCHEDULED")


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("CAMPAIGN_RETRY_PANEL_STYLESHEET", "yes", "must be True or False"),
        ("CAMPAIGN_RETRY_FLASH_CATEGORIES", {"success": "ok"}, "exactly 'success' and 'error'"),
        ("CAMPAIGN_RETRY_FLASH_CATEGORIES", {"success": "ok", "error": ""}, "non-empty string"),
    ],
)
def test_bad_web_settings_fail_init_app_with_the_fix(
    make_app: Callable[..., Flask], key: str, value: Any, needle: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(needle)):
        make_app(**{key: value})


def test_the_failure_pager_lands_on_the_failure_table(
    make_app: Callable[..., Flask], authorize: Any, mailgun: Any
) -> None:
    with _web_app(make_app) as app:
        campaign = sent_with_faults(app, mailgun, [FaultRule(status=400)], n=30)
        html = app.test_client().get(f"/host/campaigns/{campaign.id}").get_data(as_text=True)
    assert f'id="cr-failures-{campaign.id}"' in html
    next_links = re.findall(r'class="cr-pager-next" href="([^"]+)"', html)
    assert len(next_links) == 1
    assert next_links[0].endswith(f"#cr-failures-{campaign.id}")
    assert f"cr_failed_{campaign.id}=" in next_links[0]


def test_a_campaign_adopted_as_sent_says_it_has_no_record(
    make_app: Callable[..., Flask], authorize: Any
) -> None:
    with _web_app(make_app) as app:
        campaign = set_columns(draft(), status="SENT")
        html = app.test_client().get(f"/host/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Sent before delivery tracking started" in html
    assert "0 of 0 emails" not in html
    assert "cr-button--send" not in html
