"""Where a form post sends the browser back to (never another site), and the host's own
Flask-WTF settings (field name, headers, secret) honoured by the extension's CSRF check."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.state import get_state
from flask_campaign_retry.web.security import (
    MAX_REDIRECT_LENGTH,
    flask_wtf_available,
    is_allowed,
    is_safe_local_url,
    redirect_target,
)
from tests.helpers import reload
from tests.webapp import WEB_CONFIG, add_host_pages, csrf_token, draft

SAFE = [
    "/",
    "/campaigns/3",
    "/campaigns/3?tab=failed&page=2#failures",
    "/search?q=a b",  # a space (32) is not a control character
    "/" + "a" * (MAX_REDIRECT_LENGTH - 1),  # exactly the longest allowed
]
UNSAFE = [
    None,
    "",
    "campaigns/3",  # relative: not a path on this site
    "evil.example/x",
    "https://evil.example/",
    "javascript:alert(1)",
    "//evil.example",
    "///evil.example",  # browsers read three slashes as //
    "/\\evil.example",
    "/campaigns\\3",
    "/a\x1fb",
    "/a\nb",
    "/a\x7fb",
    "/" + "a" * MAX_REDIRECT_LENGTH,  # one character too long
]


@pytest.mark.parametrize("url", SAFE)
def test_local_paths_are_safe(url: str) -> None:
    assert is_safe_local_url(url) is True


@pytest.mark.parametrize("url", UNSAFE)
def test_anything_that_could_leave_the_site_is_not(url: str | None) -> None:
    assert is_safe_local_url(url) is False


def _target(
    *, next_url: str | None = None, referrer: str | None = None, base: str = "http://shop.test"
) -> str:
    app = Flask("redirects")
    headers = {"Referer": referrer} if referrer is not None else {}
    data = {"next": next_url} if next_url is not None else {}
    with app.test_request_context(
        "/campaigns/1/send", method="POST", base_url=base, headers=headers, data=data
    ):
        return redirect_target("/fallback")


def test_a_safe_next_field_wins_over_the_referrer() -> None:
    assert _target(next_url="/campaigns/9", referrer="http://shop.test/x") == "/campaigns/9"


def test_an_unsafe_next_falls_back_to_a_same_host_referrer_path_and_query() -> None:
    target = _target(next_url="//evil.example", referrer="http://shop.test/campaigns/3?page=2#f")
    assert target == "/campaigns/3?page=2"


def test_an_https_referrer_of_this_host_is_used() -> None:
    referrer = "https://shop.test/campaigns/4?tab=x"
    assert _target(referrer=referrer, base="https://shop.test") == "/campaigns/4?tab=x"


def test_a_referrer_without_a_path_goes_back_to_the_root() -> None:
    assert _target(referrer="http://shop.test") == "/"


@pytest.mark.parametrize(
    "referrer",
    ["http://evil.example/campaigns/3", "ftp://shop.test/campaigns/3", "http://shop.test:81/x"],
)
def test_a_referrer_of_another_site_or_scheme_is_ignored(referrer: str) -> None:
    assert _target(referrer=referrer) == "/fallback"


def test_a_referrer_is_used_up_to_the_length_limit_and_not_beyond() -> None:
    prefix = "http://shop.test/"
    longest = prefix + "a" * (MAX_REDIRECT_LENGTH - len(prefix))
    assert _target(referrer=longest) == longest[len(prefix) - 1 :]
    assert _target(referrer=longest + "a") == "/fallback"


# -- the host's Flask-WTF settings, through the real routes --------------------------------


@pytest.fixture
def host_app(make_app: Callable[..., Flask], authorize: Any) -> Iterator[Callable[..., Flask]]:
    opened: list[Any] = []

    def build(**config: Any) -> Flask:
        app = make_app(**WEB_CONFIG, **config)
        add_host_pages(app)
        context = app.app_context()
        context.push()
        opened.append(context)
        return app

    yield build
    for context in reversed(opened):
        context.pop()


def _panel_field(client: FlaskClient, campaign: Any) -> tuple[str, str] | None:
    """The panel's CSRF field (name, token), one for all its forms, or None."""
    g.pop("csrf_token", None)
    page = client.get(f"/host/campaigns/{campaign.id}")
    assert page.status_code == 200
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
    tokens = {(name, value) for name, value in hidden if name != "next"}
    assert len(tokens) <= 1, tokens
    return tokens.pop() if tokens else None


def test_the_panel_form_carries_the_hosts_field_name_and_a_token_that_sends(
    host_app: Callable[..., Flask],
) -> None:
    app = host_app(WTF_CSRF_FIELD_NAME="xsrf")
    client = app.test_client()
    campaign = draft()
    field = _panel_field(client, campaign)
    assert field is not None
    name, token = field
    assert name == "xsrf"
    wrong_field = client.post(f"/campaigns/{campaign.id}/send", data={"csrf_token": token})
    assert wrong_field.status_code == 400
    assert reload(campaign).status is EmailStatus.DRAFT
    sent = client.post(f"/campaigns/{campaign.id}/send", data={"xsrf": token})
    assert sent.status_code == 303
    assert reload(campaign).status is EmailStatus.SENDING


def test_the_hosts_csrf_headers_replace_the_default_ones(
    host_app: Callable[..., Flask],
) -> None:
    app = host_app(WTF_CSRF_HEADERS=["X-Shop-Token"])
    client = app.test_client()
    campaign = draft()
    token = csrf_token(client)
    default_header = client.post(
        f"/campaigns/{campaign.id}/send",
        json={},
        headers={"Accept": "application/json", "X-CSRFToken": token},
    )
    assert default_header.status_code == 400
    assert default_header.get_json()["reason"] == "The CSRF token is missing."
    assert reload(campaign).status is EmailStatus.DRAFT
    own_header = client.post(
        f"/campaigns/{campaign.id}/send",
        json={},
        headers={"Accept": "application/json", "X-Shop-Token": token},
    )
    assert own_header.status_code == 202
    assert reload(campaign).status is EmailStatus.SENDING


def test_without_a_secret_the_panel_has_no_token_and_posts_are_refused_with_the_fix(
    host_app: Callable[..., Flask],
) -> None:
    app = host_app(SECRET_KEY=None)
    client = app.test_client()
    campaign = draft()
    assert _panel_field(client, campaign) is None
    refused = client.post(
        f"/campaigns/{campaign.id}/send", json={}, headers={"Accept": "application/json"}
    )
    assert refused.status_code == 500
    assert refused.get_json()["reason"] == (
        "CSRF protection needs a secret: set SECRET_KEY (or WTF_CSRF_SECRET_KEY)."
    )
    assert reload(campaign).status is EmailStatus.DRAFT


def test_without_flask_wtf_importable_the_check_reports_it_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert flask_wtf_available() is True
    monkeypatch.setitem(sys.modules, "flask_wtf.csrf", None)  # the import now raises
    assert flask_wtf_available() is False


def test_an_unknown_action_is_a_programming_error_that_lists_the_actions(
    host_app: Callable[..., Flask],
) -> None:
    host_app()
    with pytest.raises(ValueError) as raised:
        is_allowed(get_state(), object(), "delete")
    assert str(raised.value) == (
        "Unknown action 'delete'; expected one of ['clone', 'retry', 'send', 'view']."
    )


def test_without_an_authorize_hook_the_403_says_how_to_register_one(
    host_app: Callable[..., Flask], authorize: Callable[[Any], None]
) -> None:
    app = host_app()
    authorize(None)
    campaign = draft()
    refused = app.test_client().get(
        f"/campaigns/{campaign.id}/delivery", headers={"Accept": "application/json"}
    )
    assert refused.status_code == 403
    assert refused.get_json()["reason"] == (
        "No @retry.authorize hook is registered, so flask-campaign-retry refuses every "
        "request. Register one: @retry.authorize def allowed(campaign, action): ..."
    )
