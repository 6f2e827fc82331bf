"""The blueprint's routes end to end: JSON clients and HTML form posts, on SQLite and
PostgreSQL, with RQ on the real Redis and the fake Mailgun on loopback."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.campaign_fields import column_values, renamed
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from tests import hostapp
from tests.helpers import attempts, drain, reload, status_counts
from tests.webapp import (
    csrf_token,
    draft,
    flashes,
    json_headers,
    partially_sent,
    sent_with_faults,
)


def test_retry_of_partially_sent_resends_only_the_failed_recipients_once(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    assert campaign.status is EmailStatus.PARTIALLY_SENT
    first_round = mailgun.accepted_emails()
    assert set(first_round) == {f"main00000{i}@example.com" for i in range(2, 6)}

    response = client.post(f"/campaigns/{campaign.id}/retry", headers=json_headers(client))

    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "started"
    assert body["attempt_number"] == 2
    assert body["delivery_url"] == f"/campaigns/{campaign.id}/delivery"
    assert response.headers["Location"].endswith(body["delivery_url"])
    drain(web_app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.SENT
    assert campaign.successful_sends == 6
    retried = mailgun.accepted_emails() - first_round
    assert set(retried) == {"main000000@example.com", "main000001@example.com"}
    assert set(mailgun.accepted_emails().values()) == {1}  # nobody got it twice
    assert [a.outcome for a in attempts(campaign)] == ["PARTIALLY_SENT", "SENT"]
    assert attempts(campaign)[1].id == body["attempt_id"]


def test_html_form_retry_redirects_to_next_with_a_flash(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    response = client.post(
        f"/campaigns/{campaign.id}/retry",
        data={"csrf_token": csrf_token(client), "next": "/host/campaigns/1?tab=delivery"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/host/campaigns/1?tab=delivery"
    [(category, message)] = flashes(client)
    assert category == "success"
    assert "Retry started (attempt 2)" in message
    assert reload(campaign).status is EmailStatus.SENDING


def test_send_route_starts_a_draft_and_refuses_a_second_send(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = draft()
    headers = json_headers(client)
    started = client.post(f"/campaigns/{campaign.id}/send", headers=headers)
    assert started.status_code == 202
    assert started.get_json()["attempt_number"] == 1
    again = client.post(f"/campaigns/{campaign.id}/send", headers=headers)
    assert again.status_code == 409
    assert again.get_json()["code"] == "already_sending"
    drain(web_app)
    assert reload(campaign).status is EmailStatus.SENT
    assert len(mailgun.accepted_emails()) == 6


def _row(campaign: Any) -> dict[str, Any]:
    """The campaign's row, keyed by the extension's names (also with renamed mixin fields)."""
    table = hostapp.Campaign.__table__
    hostapp.db.session.expire_all()
    row = hostapp.db.session.execute(sa.select(table).where(table.c.id == campaign.id))
    back = {name: field for field, name in renamed(hostapp.Campaign).items()}
    return {back.get(key, key): value for key, value in row.mappings().one().items()}


def test_clone_keeps_content_resets_retry_fields_and_leaves_the_original_untouched(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    hostapp.db.session.execute(
        sa.update(hostapp.Campaign.__table__)
        .where(hostapp.Campaign.__table__.c.id == campaign.id)
        .values(
            column_values(
                hostapp.Campaign.__table__,
                subject="Spring news",
                html="<p>Ünïcode ✓</p>",
                retry_count=1,
            )
        )
    )
    hostapp.db.session.commit()
    before = _row(campaign)

    response = client.post(
        f"/campaigns/{campaign.id}/clone",
        json={"only_unsent": False},
        headers={"X-CSRFToken": csrf_token(client)},
    )

    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/campaigns/{body['id']}/delivery")
    assert _row(campaign) == before  # byte-for-byte: every column of the original
    copy = _row(hostapp.db.session.get(hostapp.Campaign, body["id"]))
    for name in ("name", "list_name", "subject", "html", "from_address"):
        assert copy[name] == before[name]
    assert copy["cloned_from_id"] == campaign.id
    assert copy["status"] == EmailStatus.DRAFT
    assert (copy["retry_count"], copy["successful_sends"], copy["total_recipients"]) == (0, 0, 0)
    assert copy["failure_reason"] is None and copy["failed_at"] is None
    assert copy["max_retries"] == 3


def test_clone_only_unsent_freezes_the_recipients_who_did_not_get_it(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    response = client.post(
        f"/campaigns/{campaign.id}/clone",
        data={"only_unsent": "on", "csrf_token": csrf_token(client)},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 201
    copy = hostapp.db.session.get(hostapp.Campaign, response.get_json()["id"])
    assert response.get_json()["total_recipients"] == 2
    assert status_counts(copy) == {RecipientStatus.PENDING.value: 2}


def test_clone_only_unsent_of_a_fully_sent_campaign_is_409(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = sent_with_faults(web_app, mailgun, [])
    response = client.post(
        f"/campaigns/{campaign.id}/clone",
        json={"only_unsent": True},
        headers=json_headers(client),
    )
    assert response.status_code == 409
    assert response.get_json()["code"] == "nothing_unsent"


@pytest.mark.parametrize(
    ("method", "action"),
    [("POST", "send"), ("POST", "retry"), ("POST", "clone"), ("GET", "delivery")],
)
def test_unknown_or_malformed_ids_are_404_json(
    client: FlaskClient, method: str, action: str
) -> None:
    headers = json_headers(client)
    for raw_id in (
        "999999",
        "abc",
        "9223372036854775808",
        "99999999999999999999999",
        "-1",
        "0",
        "٣",
        "1.0",
        " 1",
        "%00",
    ):
        response = client.open(f"/campaigns/{raw_id}/{action}", method=method, headers=headers)
        assert response.status_code == 404, raw_id
        body = response.get_json()
        assert body["code"] == "unknown_campaign"
        assert "no campaign" in body["reason"]


@pytest.mark.parametrize("value", ["maybe", 1, "true", None, [True], {"a": 1}])
def test_include_uncertain_must_be_a_json_boolean(
    web_app: Flask, client: FlaskClient, mailgun: Any, value: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    response = client.post(
        f"/campaigns/{campaign.id}/retry",
        json={"include_uncertain": value},
        headers=json_headers(client),
    )
    if value is None:  # JSON null means "not given"
        assert response.status_code == 202
        return
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_field"
    assert "include_uncertain must be true or false" in response.get_json()["reason"]
    assert reload(campaign).status is EmailStatus.PARTIALLY_SENT


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"[" * 60_000, "application/json"),  # deeper than the parser allows
        (b"\xff\xfe", "application/json"),
    ],
)
def test_bad_json_bodies_are_400_not_500(
    web_app: Flask, client: FlaskClient, body: bytes, content_type: str
) -> None:
    campaign = draft()
    response = client.post(
        f"/campaigns/{campaign.id}/send",
        data=body,
        content_type=content_type,
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert response.status_code == 400
    assert response.is_json and response.get_json()["code"] == "invalid_field"
    assert reload(campaign).status is EmailStatus.DRAFT


def test_oversized_body_is_413_json(web_app: Flask, client: FlaskClient) -> None:
    campaign = draft()
    response = client.post(
        f"/campaigns/{campaign.id}/retry",
        json={"include_uncertain": False, "padding": "x" * 100_000},
        headers=json_headers(client),
    )
    assert response.status_code == 413
    assert response.get_json()["status"] == 413


def test_form_post_goes_back_to_a_same_host_referer_and_never_off_site(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = sent_with_faults(web_app, mailgun, [])  # SENT: a retry is refused
    token = csrf_token(client)
    url = f"/campaigns/{campaign.id}/retry"

    def location(**kwargs: Any) -> str:
        response = client.post(url, **kwargs)
        assert response.status_code == 303
        return str(response.headers["Location"])

    same_host = {"Referer": "http://localhost/host/campaigns/7?x=1"}
    assert location(data={"csrf_token": token}, headers=same_host) == "/host/campaigns/7?x=1"
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/ok\r\nX: y"):
        assert (
            location(data={"csrf_token": token, "next": evil}, headers=same_host)
            == "/host/campaigns/7?x=1"
        )
    other_host = {"Referer": "https://evil.example/host/campaigns/7"}
    assert location(data={"csrf_token": token}, headers=other_host) == "/"
    [(category, message), *_] = flashes(client)
    assert category == "error"
    assert "Only FAILED or PARTIALLY_SENT campaigns can be retried" in message


def test_failures_route_pages_with_a_keyset_cursor(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = sent_with_faults(web_app, mailgun, [FaultRule(status=500)], n=5)
    url = f"/campaigns/{campaign.id}/failures"
    seen: list[str] = []
    after: int | None = None
    while True:
        query = {"limit": "2"} | ({"after": str(after)} if after is not None else {})
        page = client.get(url, query_string=query).get_json()
        assert len(page["items"]) <= 2
        seen += [item["email"] for item in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [f"main00000{i}@example.com" for i in range(5)]
    assert client.get(url, query_string={"limit": "0"}).status_code == 400
    assert client.get(url, query_string={"after": "x"}).get_json()["code"] == "invalid_field"


def test_a_form_clone_opens_the_new_draft_when_the_host_says_where(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    data = {"csrf_token": csrf_token(client), "next": f"/host/campaigns/{campaign.id}"}
    without_hook = client.post(f"/campaigns/{campaign.id}/clone", data=data)
    assert without_hook.headers["Location"] == f"/host/campaigns/{campaign.id}"

    hostapp.retry.campaign_url(lambda copy: f"/host/campaigns/{copy.id}/edit")
    try:
        response = client.post(f"/campaigns/{campaign.id}/clone", data=data)
    finally:
        hostapp.retry.hooks.campaign_url = None
    assert response.status_code == 303
    newest = hostapp.db.session.execute(sa.select(sa.func.max(hostapp.Campaign.id))).scalar()
    assert response.headers["Location"] == f"/host/campaigns/{newest}/edit"
    assert newest != campaign.id
