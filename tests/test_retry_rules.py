"""Retry Send rules as the routes enforce them: every refusal says why, in JSON (409 with a
code) and in the flash message of a form post; fifty simultaneous clicks start one retry."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from flask_campaign_retry import EmailStatus, FailureKind, RecipientStatus
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, drain, reload
from tests.webapp import (
    csrf_token,
    draft,
    failed,
    flashes,
    json_headers,
    partially_sent,
    sent_with_faults,
    set_columns,
)


def assert_refused(client: FlaskClient, campaign: Any, code: str, reason: str) -> None:
    """The JSON answer is 409 with ``code``; the form post flashes the same reason."""
    url = f"/campaigns/{campaign.id}/retry"
    response = client.post(url, headers=json_headers(client))
    assert response.status_code == 409
    body = response.get_json()
    assert body["code"] == code
    assert reason in body["reason"]
    form = client.post(url, data={"csrf_token": csrf_token(client), "next": "/back"})
    assert form.status_code == 303
    assert form.headers["Location"] == "/back"
    assert flashes(client)[-1] == ("error", body["reason"])
    assert reload(campaign).status == campaign.status  # nothing changed


def test_refused_one_second_after_the_window(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    deadline = campaign.failed_at + timedelta(hours=24)
    with time_machine.travel(deadline.replace(tzinfo=UTC) + timedelta(seconds=1), tick=False):
        expected = f"The retry window ended at {deadline:%Y-%m-%d %H:%M} UTC."
        assert_refused(client, campaign, "window_expired", expected)


def test_allowed_one_second_before_the_window_ends(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    deadline = campaign.failed_at + timedelta(hours=24)
    with time_machine.travel(deadline.replace(tzinfo=UTC) - timedelta(seconds=1), tick=False):
        response = client.post(f"/campaigns/{campaign.id}/retry", headers=json_headers(client))
    assert response.status_code == 202


def test_refused_after_max_retries(web_app: Flask, client: FlaskClient, mailgun: Any) -> None:
    campaign = set_columns(failed(web_app, mailgun), max_retries=1)
    mailgun.add_fault(FaultRule(status=503))  # the one allowed retry fails again
    first = client.post(f"/campaigns/{campaign.id}/retry", headers=json_headers(client))
    assert first.status_code == 202
    drain(web_app)
    campaign = reload(campaign)
    assert (campaign.status, campaign.retry_count) == (EmailStatus.FAILED, 1)
    assert_refused(client, campaign, "no_attempts_left", "No retry attempts left (all 1 used).")


def test_refused_when_only_permanent_failures_are_left(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = sent_with_faults(
        web_app, mailgun, [FaultRule(match=r"main000004@", reject_addresses=True)]
    )
    assert campaign.status is EmailStatus.PARTIALLY_SENT
    assert_refused(client, campaign, "nothing_to_retry", "No recipient is left to retry.")


def test_refused_while_sending(web_app: Flask, client: FlaskClient, mailgun: Any) -> None:
    campaign = draft()
    hostapp.retry.send(campaign)  # not drained: the campaign stays SENDING
    assert_refused(client, campaign, "already_sending", "The campaign is already sending.")


def test_uncertain_recipients_are_resent_only_when_included(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    recipients = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(recipients)
        .where(recipients.c.campaign_id == campaign.id, recipients.c.status == "FAILED")
        .values(status=RecipientStatus.UNCERTAIN.value, failure_kind=FailureKind.UNCERTAIN.value)
    )
    hostapp.db.session.commit()
    assert_refused(
        client, campaign, "nothing_to_retry", "2 recipients have an unknown outcome; include them"
    )
    response = client.post(
        f"/campaigns/{campaign.id}/retry",
        data={"include_uncertain": "true", "csrf_token": csrf_token(client)},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 202
    drain(web_app)
    assert reload(campaign).status is EmailStatus.SENT
    assert mailgun.accepted_count("main000000@example.com") == 1


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_fifty_concurrent_retry_requests_start_exactly_one(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    server = make_server("127.0.0.1", 0, web_app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        session = requests.Session()
        token = session.get(f"{base}/host/csrf", timeout=10).text
        cookies = session.cookies.get_dict()
        start = threading.Barrier(50)

        def click(_: int) -> requests.Response:
            start.wait(timeout=30)
            return requests.post(
                f"{base}/campaigns/{campaign.id}/retry",
                json={"include_uncertain": False},
                headers={"X-CSRFToken": token, "Accept": "application/json"},
                cookies=cookies,
                timeout=60,
            )

        with ThreadPoolExecutor(max_workers=50) as pool:
            responses = list(pool.map(click, range(50)))
    finally:
        server.shutdown()
        server.server_close()
    assert Counter(r.status_code for r in responses) == {202: 1, 409: 49}
    refusals = [r.json() for r in responses if r.status_code == 409]
    assert {body["code"] for body in refusals} == {"already_sending"}
    assert all(body["reason"] for body in refusals)
    assert [a.number for a in attempts(campaign)] == [1, 2]  # exactly one new attempt row
    assert reload(campaign).retry_count == 1
