"""The order of the state-changing routes' checks past CSRF: 404 before 403 before 400 before
409, and the request's fields are not read before ``authorize`` has allowed the request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from flask_campaign_retry import EmailStatus
from tests.helpers import attempts, reload
from tests.webapp import csrf_token, draft, set_columns

ACTIONS = ("send", "retry", "clone")
NOT_AN_OBJECT = "[1, 2]"


def _post(client: FlaskClient, campaign_id: Any, action: str, body: str) -> Any:
    return client.post(
        f"/campaigns/{campaign_id}/{action}",
        data=body,
        headers={
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-CSRFToken": csrf_token(client),
        },
    )


@pytest.mark.parametrize("action", ACTIONS)
def test_an_unknown_campaign_is_404_before_authorize_and_fields(
    web_app: Flask, client: FlaskClient, authorize: Callable[..., None], action: str
) -> None:
    calls: list[tuple[Any, str]] = []
    authorize(lambda campaign, what: calls.append((campaign.id, what)) or False)
    response = _post(client, 987654, action, NOT_AN_OBJECT)
    assert response.status_code == 404
    assert response.get_json()["code"] == "unknown_campaign"
    assert calls == []


@pytest.mark.parametrize("action", ACTIONS)
def test_a_forbidden_request_is_403_before_its_fields_are_read(
    web_app: Flask, client: FlaskClient, authorize: Callable[..., None], action: str
) -> None:
    campaign = draft()
    seen: list[tuple[str, bool]] = []

    def deny(target: Any, what: str) -> bool:
        # The body is cached on the request once something read it: nothing may have yet.
        seen.append((what, "_cached_data" in vars(request._get_current_object())))
        return False

    authorize(deny)
    response = _post(client, campaign.id, action, NOT_AN_OBJECT)
    assert response.status_code == 403
    assert response.get_json()["reason"] == f"You are not allowed to {action} this campaign."
    assert seen == [(action, False)]
    assert reload(campaign).status is EmailStatus.DRAFT
    assert attempts(campaign) == []


@pytest.mark.parametrize("action", ACTIONS)
def test_bad_fields_are_400_before_a_refusal(
    web_app: Flask, client: FlaskClient, action: str
) -> None:
    # SENT: every action but clone would be refused (409), yet the body is checked first.
    campaign = set_columns(draft(), status=EmailStatus.SENT)
    response = _post(client, campaign.id, action, NOT_AN_OBJECT)
    assert response.status_code == 400
    assert "must be an object" in response.get_json()["reason"]


def test_a_bad_flag_value_is_400_naming_the_field(web_app: Flask, client: FlaskClient) -> None:
    campaign = set_columns(draft(), status=EmailStatus.FAILED)
    response = _post(client, campaign.id, "retry", '{"include_uncertain": "maybe"}')
    assert response.status_code == 400
    assert "include_uncertain" in response.get_json()["reason"]


@pytest.mark.parametrize(
    ("action", "code"), [("send", "not_sendable"), ("retry", "not_retryable_status")]
)
def test_valid_fields_on_a_campaign_in_the_wrong_status_are_409(
    web_app: Flask, client: FlaskClient, action: str, code: str
) -> None:
    campaign = set_columns(draft(), status=EmailStatus.SENT)
    response = _post(client, campaign.id, action, "{}")
    assert response.status_code == 409
    assert response.get_json()["code"] == code
    assert reload(campaign).status is EmailStatus.SENT


def test_a_bad_csrf_token_is_400_before_the_campaign_is_looked_up(
    web_app: Flask, client: FlaskClient, authorize: Callable[..., None]
) -> None:
    calls: list[str] = []
    authorize(lambda campaign, what: calls.append(what) or True)
    response = client.post(
        "/campaigns/987654/retry",
        json={},
        headers={"Accept": "application/json", "X-CSRFToken": "not-a-token"},
    )
    assert response.status_code == 400
    assert calls == []
