"""The ``campaign_retry/panel.html`` partial, included by a host page with only ``campaign`` in
the context, rendered for every status; assertions are on the HTML a person would see."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf.csrf import CSRFProtect

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.queue.worker import run_burst
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import reload
from tests.webapp import (
    WEB_CONFIG,
    add_host_pages,
    draft,
    failed,
    flashes,
    partially_sent,
    sent_with_faults,
    set_columns,
)

BLOCKS = frozenset({"p", "li", "td", "th", "tr", "h2", "h3", "button", "label", "div", "br"})


class Page(HTMLParser):
    """The panel's buttons and forms, and its text with whitespace collapsed."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.buttons: list[dict[str, Any]] = []
        self.forms: list[dict[str, Any]] = []
        self._button: dict[str, Any] | None = None
        self._chunks: list[str] = []
        self.feed(html)
        self.text = re.sub(r"\s+", " ", "".join(self._chunks))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS:
            self._chunks.append(" ")
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attributes["action"], "fields": {}})
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"][attributes.get("name")] = attributes.get("value")
        elif tag == "button":
            self._button = {
                "class": attributes.get("class", ""),
                "disabled": "disabled" in attributes,
                "text": "",
            }

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCKS:
            self._chunks.append(" ")
        if tag == "button" and self._button is not None:
            self._button["text"] = re.sub(r"\s+", " ", self._button["text"]).strip()
            self.buttons.append(self._button)
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data
        self._chunks.append(data)

    def button(self, css: str) -> dict[str, Any] | None:
        found = [b for b in self.buttons if css in b["class"].split()]
        return found[0] if found else None


def render(client: FlaskClient, campaign: Any, query: str = "") -> Page:
    response = client.get(f"/host/campaigns/{campaign.id}{query}")
    assert response.status_code == 200
    return Page(response.get_data(as_text=True))


def test_draft(web_app: Flask, client: FlaskClient) -> None:
    page = render(client, draft())
    assert "Delivery Draft" in page.text
    assert "Not sent yet." in page.text
    assert page.button("cr-button--send") == {
        "class": "cr-button cr-button--send",
        "disabled": False,
        "text": "Send now",
    }
    assert page.button("cr-button--retry") is None
    assert "Attempts" not in page.text


def test_sending_shows_progress_refreshes_and_disables_retry(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    hostapp.retry.retry(campaign)  # not drained: SENDING
    html = client.get(f"/host/campaigns/{campaign.id}").get_data(as_text=True)
    page = Page(html)
    assert "Delivery Sending" in page.text
    assert "4 of 6 emails sent so far." in page.text
    retry = page.button("cr-button--retry")
    assert retry is not None and retry["disabled"]
    assert "The campaign is already sending." in page.text
    assert "Failure reason" not in page.text and "Failed at" not in page.text  # not current
    assert f'data-cr-refresh="/campaigns/{campaign.id}/delivery"' in html
    assert "fetch(url" in html  # the refresh script is there for browsers with JavaScript
    assert "running" in page.text  # attempt 2 has not ended


def test_sent(web_app: Flask, client: FlaskClient, mailgun: Any) -> None:
    html = client.get(f"/host/campaigns/{sent_with_faults(web_app, mailgun, []).id}").get_data(
        as_text=True
    )
    page = Page(html)
    assert "Delivery Sent" in page.text
    assert "6 of 6 emails sent successfully." in page.text
    assert page.button("cr-button--retry") is None
    assert page.button("cr-button--clone") is not None
    assert page.button("cr-button--clone-unsent") is None
    assert "did not get it" not in page.text
    assert 'data-cr-refresh="' not in html  # no polling once the campaign has settled


def test_partially_sent_offers_retry_with_countdown_failures_and_clone(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    deadline = campaign.failed_at + timedelta(hours=24)
    with time_machine.travel(
        campaign.failed_at.replace(tzinfo=UTC) + timedelta(hours=2, minutes=30), tick=False
    ):
        page = render(client, campaign)
    assert "Delivery Partially sent" in page.text
    assert "4 of 6 emails sent successfully." in page.text
    assert "Failure reason: 2 of 6 recipients did not get the email" in page.text
    assert f"Failed at: {campaign.failed_at:%Y-%m-%d %H:%M} UTC" in page.text
    retry = page.button("cr-button--retry")
    assert retry == {
        "class": "cr-button cr-button--retry",
        "disabled": False,
        "text": "Retry 2 recipients (3 attempts left)",
    }
    assert f"Retry possible until {deadline:%Y-%m-%d %H:%M} UTC (21 h 30 min left)." in page.text
    assert "Recipients who did not get it (2)" in page.text
    assert "2 temporary failure: HTTP 500 from Mailgun: Internal Server Error" in page.text
    assert "main000000@example.com failed (temporary failure) HTTP 500 from Mailgun" in page.text
    assert "main000002@example.com" not in page.text  # accepted ones are not listed
    unsent = page.button("cr-button--clone-unsent")
    assert unsent is not None and unsent["text"] == "Clone for the 2 recipients who did not get it"
    assert "1 initial" in page.text and "Partially sent" in page.text
    assert "PARTIALLY_SENT" not in page.text  # outcomes read as words


def test_failed_with_attempts_left(web_app: Flask, client: FlaskClient, mailgun: Any) -> None:
    page = render(client, failed(web_app, mailgun))
    assert "Delivery Failed" in page.text
    assert "0 of 6 emails sent successfully." in page.text
    retry = page.button("cr-button--retry")
    assert retry is not None and not retry["disabled"]
    assert retry["text"] == "Retry 6 recipients (3 attempts left)"


def test_failed_without_attempts_left(web_app: Flask, client: FlaskClient, mailgun: Any) -> None:
    campaign = set_columns(failed(web_app, mailgun), retry_count=3)
    page = render(client, campaign)
    retry = page.button("cr-button--retry")
    assert retry == {
        "class": "cr-button cr-button--retry",
        "disabled": True,
        "text": "Retry (0 attempts left)",
    }
    assert "No retry attempts left (all 3 used)." in page.text
    assert "Retry possible until" not in page.text
    assert page.button("cr-button--clone") is not None  # the way forward


def test_window_expired(web_app: Flask, client: FlaskClient, mailgun: Any) -> None:
    campaign = failed(web_app, mailgun)
    deadline = campaign.failed_at + timedelta(hours=24)
    with time_machine.travel(deadline.replace(tzinfo=UTC) + timedelta(seconds=1), tick=False):
        page = render(client, campaign)
    retry = page.button("cr-button--retry")
    assert retry is not None and retry["disabled"]
    assert retry["text"] == "Retry"  # attempts are left, but they are not the reason
    assert f"The retry window ended at {deadline:%Y-%m-%d %H:%M} UTC." in page.text


def test_panel_form_works_without_javascript(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    page = render(client, campaign, "?tab=delivery")
    [form] = [f for f in page.forms if f["action"].endswith("/retry")]
    assert form["fields"]["next"] == f"/host/campaigns/{campaign.id}?tab=delivery"
    response = client.post(form["action"], data=form["fields"])
    assert response.status_code == 303
    assert response.headers["Location"] == f"/host/campaigns/{campaign.id}?tab=delivery"
    assert flashes(client)[0][0] == "success"
    assert reload(campaign).status is EmailStatus.SENDING


def test_panel_uses_the_hosts_csrf_token_global(make_app: Any, authorize: Any) -> None:
    app = make_app(**WEB_CONFIG)
    CSRFProtect(app)
    add_host_pages(app)
    with app.app_context():
        campaign = draft()
        client = app.test_client()
        forms = render(client, campaign).forms
        assert [f["action"].rsplit("/", 1)[1] for f in forms] == ["send", "schedule"]
        form = forms[0]
        assert form["fields"]["csrf_token"] and forms[1]["fields"]["csrf_token"]
        assert client.post(form["action"], data=form["fields"]).status_code == 303
        assert reload(campaign).status is EmailStatus.SENDING


def test_failed_recipients_are_paginated_with_plain_links(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = sent_with_faults(web_app, mailgun, [FaultRule(status=500)], n=23)
    html = client.get(f"/host/campaigns/{campaign.id}?tab=x").get_data(as_text=True)
    first = Page(html)
    assert first.text.count("@example.com") == 20
    link = re.search(r'class="cr-pager-next" href="([^"]+)"', html)
    assert link is not None
    next_url = link.group(1).replace("&amp;", "&")
    assert next_url.startswith(f"/host/campaigns/{campaign.id}?tab=x&cr_failed_{campaign.id}=")
    second_html = client.get(next_url).get_data(as_text=True)
    second = Page(second_html)
    assert [f"main0000{i:02d}@example.com" in second.text for i in (19, 20, 21, 22)] == [
        False,
        True,
        True,
        True,
    ]
    assert "cr-pager-next" not in second_html and "First page" in second.text


def test_a_viewer_the_host_does_not_allow_sees_no_details(
    web_app: Flask, client: FlaskClient, authorize: Any, mailgun: Any
) -> None:
    authorize(lambda campaign, action: False)
    page = render(client, failed(web_app, mailgun))
    assert "You are not allowed to view this campaign's delivery details." in page.text
    assert page.forms == [] and "@example.com" not in page.text


def test_hosts_override_the_partial_by_path(
    web_app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    (tmp_path / "campaign_retry").mkdir()
    (tmp_path / "campaign_retry" / "panel.html").write_text(
        "custom {{ campaign_retry_panel(campaign).status_label }}"
    )
    web_app.template_folder = str(tmp_path)
    response = client.get(f"/host/campaigns/{draft().id}")
    assert response.get_data(as_text=True) == "custom Draft"


def test_a_running_retry_shows_its_own_progress_not_the_last_attempts_failures(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    hostapp.retry.retry(campaign)  # not drained: the retry's preparation has not run
    page = render(client, campaign)
    assert "This retry is preparing its list of recipients." in page.text
    assert "Recipients who did not get it" not in page.text  # the last attempt's failures
    assert "main000000@example.com" not in page.text
    assert "2 manual" in page.text and "preparing" in page.text  # not "Targeted 0"
    run_burst(web_app)  # preparation and the batch: the retry sends to both
    set_columns(campaign, status="SENDING")  # look at it as if its last batch were in flight
    attempts = get_state().models.attempt
    hostapp.db.session.execute(
        sa.update(attempts)
        .where(attempts.campaign_id == campaign.id, attempts.number == 2)
        .values(ended_at=None)
    )
    hostapp.db.session.commit()
    page = render(client, campaign)
    assert "This retry: 2 of 2 recipients sent." in page.text


def test_the_providers_resume_time_shows_beside_retry_while_ahead(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = failed(web_app, mailgun)
    attempts = get_state().models.attempt
    resume = campaign.failed_at + timedelta(minutes=45)
    hostapp.db.session.execute(
        sa.update(attempts).where(attempts.campaign_id == campaign.id).values(paused_until=resume)
    )
    hostapp.db.session.commit()
    with time_machine.travel(
        campaign.failed_at.replace(tzinfo=UTC) + timedelta(minutes=5), tick=False
    ):
        page = render(client, campaign)
    assert f"The provider asked to wait until {resume:%Y-%m-%d %H:%M} UTC." in page.text
    with time_machine.travel(resume.replace(tzinfo=UTC) + timedelta(minutes=1), tick=False):
        page = render(client, campaign)
    assert "The provider asked to wait" not in page.text
