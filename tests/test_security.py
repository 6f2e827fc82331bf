"""CSRF on every state-changing route (with and without the host's CSRFProtect), the
``authorize`` hook for every action, the secure default without a hook, and fuzzed requests
that must never produce a 500."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf.csrf import CSRFError, CSRFProtect
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.web import security as security_module
from tests import hostapp
from tests.helpers import reload
from tests.webapp import (
    WEB_CONFIG,
    add_host_pages,
    csrf_token,
    draft,
    failed,
    json_headers,
)

POST_ACTIONS = ("send", "retry", "clone")


@pytest.fixture(params=["own-check", "host-csrfprotect"])
def csrf_app(
    request: pytest.FixtureRequest, make_app: Callable[..., Flask], authorize: Any
) -> Iterator[Flask]:
    """The extension checking tokens itself, and a host that registered CSRFProtect."""
    app = make_app(**WEB_CONFIG)
    if request.param == "host-csrfprotect":
        CSRFProtect(app)
    add_host_pages(app)
    with app.app_context():
        yield app


@pytest.mark.parametrize("action", POST_ACTIONS)
def test_missing_csrf_token_is_400_and_changes_nothing(csrf_app: Flask, action: str) -> None:
    client = csrf_app.test_client()
    campaign = draft()
    csrf_token(client)  # a session exists; the request just does not carry the token
    as_json = client.post(f"/campaigns/{campaign.id}/{action}", json={})
    assert as_json.status_code == 400
    assert as_json.get_json()["code"] == "csrf_failed"
    assert as_json.get_json()["reason"] == "The CSRF token is missing."
    as_form = client.post(f"/campaigns/{campaign.id}/{action}", data={"next": "/x"})
    assert as_form.status_code == 400
    assert "CSRF token is missing" in as_form.get_data(as_text=True)
    assert reload(campaign).status is EmailStatus.DRAFT
    assert hostapp.db.session.query(hostapp.Campaign).count() == 1  # no clone either


def test_invalid_or_foreign_tokens_are_400(csrf_app: Flask) -> None:
    campaign = draft()
    mine, other = csrf_app.test_client(), csrf_app.test_client()
    csrf_token(mine)
    url = f"/campaigns/{campaign.id}/send"
    bad = mine.post(url, json={}, headers={"X-CSRFToken": "forged"})
    assert (bad.status_code, bad.get_json()["reason"]) == (400, "The CSRF token is invalid.")
    foreign = mine.post(url, json={}, headers={"X-CSRFToken": csrf_token(other)})
    assert foreign.status_code == 400
    assert foreign.get_json()["reason"] == "The CSRF tokens do not match."
    assert reload(campaign).status is EmailStatus.DRAFT
    ok = mine.post(url, json={}, headers={"X-CSRFToken": csrf_token(mine)})
    assert ok.status_code == 202


def test_a_browser_sees_the_hosts_own_csrf_error_page(web_app: Flask) -> None:
    @web_app.errorhandler(CSRFError)
    def host_page(error: CSRFError) -> tuple[str, int]:
        return f"host page: {error.description}", 400

    client = web_app.test_client()
    campaign = draft()
    response = client.post(f"/campaigns/{campaign.id}/send", data={})
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "host page: The CSRF token is missing."
    as_json = client.post(f"/campaigns/{campaign.id}/send", json={})
    assert as_json.get_json()["code"] == "csrf_failed"  # JSON clients keep the JSON contract


def test_wtf_csrf_enabled_false_turns_the_check_off(make_app: Any, authorize: Any) -> None:
    app = make_app(WTF_CSRF_ENABLED=False, **WEB_CONFIG)
    with app.app_context():
        campaign = draft()
        response = app.test_client().post(f"/campaigns/{campaign.id}/send", json={})
        assert response.status_code == 202


def test_host_exemption_of_the_blueprint_is_honoured(make_app: Any, authorize: Any) -> None:
    app = make_app(**WEB_CONFIG)
    csrf = CSRFProtect(app)
    csrf.exempt(app.blueprints["campaign_retry"])  # the host's own choice, e.g. a token API
    with app.app_context():
        campaign = draft()
        response = app.test_client().post(f"/campaigns/{campaign.id}/send", json={})
        assert response.status_code == 202


def test_without_flask_wtf_state_changing_routes_refuse_with_install_advice(
    web_app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = draft()
    monkeypatch.setattr(security_module, "flask_wtf_available", lambda: False)
    response = client.post(f"/campaigns/{campaign.id}/send", json={})
    assert response.status_code == 500
    assert "`pip install flask-wtf`" in response.get_json()["reason"]
    assert reload(campaign).status is EmailStatus.DRAFT
    assert client.get(f"/campaigns/{campaign.id}/delivery").status_code == 200


@pytest.mark.parametrize(
    ("method", "action"), [*(("POST", a) for a in POST_ACTIONS), ("GET", "view")]
)
def test_authorize_hook_says_no_is_403_and_gets_the_action(
    web_app: Flask, client: FlaskClient, authorize: Any, method: str, action: str
) -> None:
    calls: list[tuple[Any, str]] = []

    def deny(campaign: Any, asked: str) -> bool:
        calls.append((campaign.id, asked))
        return False

    authorize(deny)
    campaign = draft()
    path = "delivery" if action == "view" else action
    response = client.open(
        f"/campaigns/{campaign.id}/{path}", method=method, headers=json_headers(client)
    )
    assert response.status_code == 403
    assert response.get_json()["reason"] == f"You are not allowed to {action} this campaign."
    assert calls == [(campaign.id, action)]
    assert reload(campaign).status is EmailStatus.DRAFT


def test_hook_can_allow_one_action_and_refuse_another(
    web_app: Flask, client: FlaskClient, authorize: Any, mailgun: Any
) -> None:
    authorize(lambda campaign, action: action == "view")
    campaign = failed(web_app, mailgun)
    assert client.get(f"/campaigns/{campaign.id}/delivery").status_code == 200
    refused = client.post(f"/campaigns/{campaign.id}/retry", headers=json_headers(client))
    assert refused.status_code == 403
    assert reload(campaign).status is EmailStatus.FAILED


def test_without_a_hook_every_route_is_403(
    web_app: Flask, client: FlaskClient, authorize: Any
) -> None:
    authorize(None)
    campaign = draft()
    headers = json_headers(client)
    for method, path in [*(("POST", a) for a in POST_ACTIONS), ("GET", "delivery")]:
        response = client.open(f"/campaigns/{campaign.id}/{path}", method=method, headers=headers)
        assert response.status_code == 403
        assert "No @retry.authorize hook is registered" in response.get_json()["reason"]
    assert reload(campaign).status is EmailStatus.DRAFT


# -- fuzzing: whatever arrives, the answer is never a 500 -----------------------------------

ROUTES = [
    ("POST", "send"),
    ("POST", "retry"),
    ("POST", "clone"),
    ("GET", "delivery"),
    ("GET", "failures"),
]
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-16",
            "application/vnd.api+json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=zz",
            "text/plain",
            "text/html; charset=nope",
        ]
    ),
    st.text(string.ascii_letters + string.digits + '/;=+-.,* "', max_size=30),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["include_uncertain", "only_unsent", "next", "x"]), JSON_VALUES
    ).map(lambda d: json.dumps(d).encode()),
    st.dictionaries(st.sampled_from(["include_uncertain", "only_unsent", "next"]), st.text()).map(
        lambda d: "&".join(f"{quote(k)}={quote(v)}" for k, v in d.items()).encode()
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    raw_id=st.one_of(
        st.sampled_from(["1", "2"]),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(max_size=30),
    ),
    body=BODIES,
    content_type=CONTENT_TYPES,
    accept=st.sampled_from([None, "application/json", "text/html", "*/*", "garbage;;q=x"]),
    with_token=st.booleans(),
    query=st.dictionaries(st.sampled_from(["after", "limit"]), st.text(max_size=25), max_size=2),
)
def test_fuzzed_requests_never_get_a_500(
    fuzz: tuple[FlaskClient, str],
    route: tuple[str, str],
    raw_id: str,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    with_token: bool,
    query: dict[str, str],
) -> None:
    fuzz_client, token = fuzz
    method, action = route
    headers = {"Accept": accept} if accept else {}
    if with_token:
        headers["X-CSRFToken"] = token
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = fuzz_client.open(
        f"/campaigns/{quote(raw_id, safe='')}/{action}",
        method=method,
        data=body if method == "POST" else None,
        headers=headers,
        query_string=query,
    )
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    plain_id = raw_id not in ("", ".", "..") and "/" not in raw_id
    if plain_id and (accept == "application/json" or method == "GET"):
        assert response.is_json, (response.status_code, response.get_data(as_text=True)[:200])


@pytest.fixture
def fuzz(web_app: Flask, mailgun: Any) -> tuple[FlaskClient, str]:
    """Campaign 1 is FAILED, campaign 2 a DRAFT; a client with a session and its token."""
    failed(web_app, mailgun)
    draft(list_name="other")
    client = web_app.test_client()
    return client, csrf_token(client)
