"""Retry preview: who a retry would send to, and who not and why; the retry then sends to
exactly that set; the panel's button and breakdown say it before the click."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_campaign_retry import RecipientStatus
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import drain, emails, recipient_rows
from tests.test_panel import render
from tests.webapp import sent_with_faults

EXCLUDED = "main000001@example.com"


@pytest.fixture
def exclude_one() -> Iterator[Callable[[], None]]:
    """Call it to make the host exclude EXCLUDED from now on (unsubscribed since the send)."""
    hooks = hostapp.retry.hooks
    saved = hooks.exclude_recipients

    def start() -> None:
        hooks.exclude_recipients = lambda campaign, batch: [e for e in batch if e == EXCLUDED]

    yield start
    hooks.exclude_recipients = saved


def mixed(app: Flask, mailgun: Any) -> Any:
    """12 recipients in batches of 2: main000000-03 transient (500), main000004-05 refused for
    good (400 on their addresses), main000006 made UNCERTAIN, the rest SENT."""
    campaign = sent_with_faults(
        app,
        mailgun,
        [
            FaultRule(status=500, match=r"main00000[0-3]@"),
            FaultRule(match=r"main00000[45]@", reject_addresses=True),
        ],
        n=12,
    )
    table = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(table)
        .where(table.c.campaign_id == campaign.id, table.c.email == "main000006@example.com")
        .values(status=RecipientStatus.UNCERTAIN, failure_kind="uncertain")
    )
    hostapp.db.session.commit()
    return campaign


def test_preview_then_retry_sends_to_exactly_the_previewed_set(
    web_app: Flask, client: FlaskClient, mailgun: Any, exclude_one: Callable[[], None]
) -> None:
    campaign = mixed(web_app, mailgun)
    exclude_one()
    url = f"/campaigns/{campaign.id}/retry-preview"
    first = client.get(url + "?limit=2")
    assert first.status_code == 200
    body = first.get_json()
    assert body["allowed"] is True and body["attempts_left"] == 3
    assert body["would_send"] == 3
    assert body["not_resent"] == {
        "permanent": 2,
        "uncertain": 1,
        "excluded_now": 1,
        "invalid_address": 0,
        "skipped_before": 0,
    }
    [group] = body["by_reason"]
    assert (group["status"], group["failure_kind"], group["error_code"], group["count"]) == (
        "FAILED",
        "transient",
        500,
        3,
    )
    [permanent] = body["permanent_reasons"]
    assert (permanent["error_code"], permanent["count"]) == (400, 2)
    second = client.get(url + f"?limit=2&after={body['next_after']}").get_json()
    assert second["next_after"] is None
    previewed = {item["email"] for item in body["items"] + second["items"]}
    assert previewed == {
        "main000000@example.com",
        "main000002@example.com",
        "main000003@example.com",
    }

    before = Counter(mailgun.accepted_emails())
    hostapp.retry.retry(campaign)
    drain(web_app)
    resent = Counter(mailgun.accepted_emails()) - before
    assert set(resent) == previewed and set(resent.values()) == {1}
    assert recipient_rows(campaign)[EXCLUDED].status is RecipientStatus.SKIPPED


def test_preview_with_uncertain_included_lists_them(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = mixed(web_app, mailgun)
    body = client.get(f"/campaigns/{campaign.id}/retry-preview?include_uncertain=1").get_json()
    assert body["would_send"] == 5
    assert body["not_resent"]["uncertain"] == 0
    assert "main000006@example.com" in {item["email"] for item in body["items"]}
    bad = client.get(f"/campaigns/{campaign.id}/retry-preview?include_uncertain=maybe")
    assert bad.status_code == 400


def test_preview_route_404_and_403(
    web_app: Flask, client: FlaskClient, mailgun: Any, authorize: Any
) -> None:
    assert client.get("/campaigns/999999/retry-preview").status_code == 404
    campaign = mixed(web_app, mailgun)
    authorize(lambda c, action: False)
    assert client.get(f"/campaigns/{campaign.id}/retry-preview").status_code == 403


def test_panel_button_says_how_many_and_shows_the_breakdown(
    web_app: Flask, client: FlaskClient, mailgun: Any, exclude_one: Callable[[], None]
) -> None:
    campaign = mixed(web_app, mailgun)
    exclude_one()
    page = render(client, campaign)
    retry = page.button("cr-button--retry")
    assert retry is not None and not retry["disabled"]
    assert retry["text"] == "Retry 3 recipients (3 attempts left)"
    assert "3 temporary failure: HTTP 500 from Mailgun" in page.text
    assert "Not resent: 2 rejected for good" in page.text
    assert "Not resent: 1 with an unknown outcome (unless you include them)" in page.text
    assert "Not resent: 1 excluded now (unsubscribed or suppressed)" in page.text
    assert "via mailgun" in page.text  # the attempt log names the provider that carried it


def test_preview_pages_a_large_list_by_keyset(app: Flask, mailgun: Any) -> None:
    addresses = emails(2300)
    hostapp.add_subscribers("big", addresses)
    campaign = hostapp.new_campaign("big")
    mailgun.add_fault(FaultRule(status=500))
    hostapp.retry.send(campaign)
    drain(app)
    mailgun.clear_faults()
    seen: list[str] = []
    after = None
    while True:
        preview = hostapp.retry.retry_preview(campaign, after=after, limit=200)
        assert preview.would_send == 2300
        seen += [item["email"] for item in preview.items]
        if preview.next_after is None:
            break
        after = preview.next_after
    assert seen == addresses
