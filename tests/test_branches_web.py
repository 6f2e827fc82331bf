"""Web paths no other test takes: an empty JSON body, a form flag spelled "off"; the panel
outside a request, with the retry allowed or not allowed to this user, and while a campaign
sends with no attempt running."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_campaign_retry.campaign_fields import column_values
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import EmailStatus
from flask_campaign_retry.web.panel import build_panel
from tests import hostapp
from tests.helpers import reload
from tests.webapp import csrf_token, draft, json_headers, partially_sent


def test_an_empty_json_body_means_no_fields(web_app: Flask, client: FlaskClient) -> None:
    campaign = draft()
    response = client.post(
        f"/campaigns/{campaign.id}/send",
        data=b"  ",
        content_type="application/json",
        headers=json_headers(client),
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    assert reload(campaign).status is EmailStatus.SENDING


def test_a_form_flag_spelled_off_is_false(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    response = client.post(
        f"/campaigns/{campaign.id}/retry",
        data={"csrf_token": csrf_token(client), "include_uncertain": " Off "},
    )
    assert response.status_code == 303
    campaign = reload(campaign)
    assert (campaign.status, campaign.retry_count) == (EmailStatus.SENDING, 1)


def test_the_panel_built_outside_a_request_has_no_links_token_or_way_back(
    web_app: Flask, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    web_app.config["SERVER_NAME"] = "campaigns.example.test"
    with web_app.app_context():  # a new context, to build URLs from SERVER_NAME
        panel = build_panel(get_state(), campaign)
    assert (panel.next_page_url, panel.first_page_url) == (None, None)
    assert (panel.csrf_token, panel.back_url, panel.stylesheet_url) == (None, None, None)
    assert [item["email"] for item in panel.failed.items] == [
        "main000000@example.com",
        "main000001@example.com",
    ]
    assert panel.urls["retry"] == f"http://campaigns.example.test/campaigns/{campaign.id}/retry"


def test_the_retry_button_says_why_it_is_disabled_only_when_it_is(
    web_app: Flask, mailgun: Any, authorize: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    with web_app.test_request_context("/"):
        allowed = build_panel(get_state(), campaign)
        assert (allowed.retry_enabled, allowed.retry_disabled_reason) == (True, None)
        authorize(lambda campaign, action: action != "retry")
        refused = build_panel(get_state(), campaign)
    assert refused.retry_enabled is False
    assert refused.retry_disabled_reason == "You are not allowed to retry this campaign."


def test_a_sending_campaign_without_a_running_attempt_shows_none(web_app: Flask) -> None:
    campaign = draft()
    table = get_state().models.campaign.__table__
    hostapp.db.session.execute(
        sa.update(table)
        .where(table.c.id == campaign.id)
        .values(column_values(table, status=EmailStatus.SENDING))
    )
    hostapp.db.session.commit()
    with web_app.test_request_context("/"):
        panel = build_panel(get_state(), reload(campaign))
    assert panel.status == "SENDING"
    assert panel.running_attempt is None
