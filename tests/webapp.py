"""Helpers for the host-facing tests: hooks on the shared extension, a host page that includes
the panel, CSRF tokens for the test client, and campaigns put in each status for real (sent
through RQ to the fake Mailgun, with scripted faults).

The fixtures (``web_app``, ``client``, ``authorize``) reach every test module through
``pytest_plugins`` in conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g, has_app_context, render_template_string
from flask.testing import FlaskClient

from flask_campaign_retry.campaign_fields import column_values
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import drain, emails, reload

#: Small batches so that a fault on one address pattern fails one batch and not the others;
#: no automatic retries, so a failed batch stays failed until a manual retry.
WEB_CONFIG: dict[str, Any] = {
    "CAMPAIGN_RETRY_BATCH_SIZE": 2,
    "CAMPAIGN_RETRY_AUTO_RETRY": False,
    "CAMPAIGN_RETRY_BATCH_MAX_TRIES": 1,
}
PAGE = "{% include 'campaign_retry/panel.html' %}"

Authorizer = Callable[[Any, str], bool]


def allow_all(campaign: Any, action: str) -> bool:
    return True


@pytest.fixture(name="authorize")
def fixture_authorize() -> Iterator[Callable[[Authorizer | None], None]]:
    """Set the shared extension's ``authorize`` hook for one test; restored afterwards."""
    hooks = hostapp.retry.hooks
    saved = hooks.authorize

    def use(hook: Authorizer | None) -> None:
        hooks.authorize = hook

    use(allow_all)
    yield use
    hooks.authorize = saved


def add_host_pages(app: Flask) -> None:
    """A host page that includes the panel, and one that hands out a CSRF token."""

    @app.get("/host/campaigns/<int:campaign_id>")
    def host_campaign(campaign_id: int) -> str:
        campaign = hostapp.db.get_or_404(hostapp.Campaign, campaign_id)
        return render_template_string(PAGE, campaign=campaign)

    @app.get("/host/csrf")
    def host_csrf() -> str:
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())


@pytest.fixture(name="web_app")
def fixture_web_app(
    make_app: Callable[..., Flask], authorize: Callable[[Authorizer | None], None]
) -> Iterator[Flask]:
    """A host app without CSRFProtect (the extension checks tokens itself), allowing all."""
    app = make_app(**WEB_CONFIG)
    add_host_pages(app)
    with app.app_context():
        yield app


@pytest.fixture(name="client")
def fixture_client(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


def csrf_token(client: FlaskClient) -> str:
    """A valid token for this client's session (the session cookie is set by the call).

    Flask-WTF caches the token in ``g``, which belongs to the app context; these tests keep
    one app context open across requests, so the cache is dropped to get this client's token.
    """
    if has_app_context():
        g.pop("csrf_token", None)
    return client.get("/host/csrf").get_data(as_text=True)


def json_headers(client: FlaskClient) -> dict[str, str]:
    return {"Accept": "application/json", "X-CSRFToken": csrf_token(client)}


def flashes(client: FlaskClient) -> list[tuple[str, str]]:
    with client.session_transaction() as session:
        return list(session.get("_flashes", []))


# -- campaigns in each status --------------------------------------------------------------


def draft(n: int = 6, list_name: str = "main") -> Any:
    hostapp.add_subscribers(list_name, emails(n, prefix=list_name))
    return hostapp.new_campaign(list_name)


def sent_with_faults(app: Flask, mailgun: Any, rules: list[FaultRule], n: int = 6) -> Any:
    """Send a fresh campaign of ``n`` recipients with ``rules`` scripted; returns it settled."""
    campaign = draft(n)
    for rule in rules:
        mailgun.add_fault(rule)
    hostapp.retry.send(campaign)
    drain(app)
    mailgun.clear_faults()
    return reload(campaign)


def partially_sent(app: Flask, mailgun: Any) -> Any:
    """6 recipients in batches of 2; the first batch (main000000, main000001) gets a 500."""
    return sent_with_faults(app, mailgun, [FaultRule(status=500, match=r"main00000[01]@")])


def failed(app: Flask, mailgun: Any) -> Any:
    """Every batch gets a 500: FAILED, all 6 recipients retryable."""
    return sent_with_faults(app, mailgun, [FaultRule(status=500)])


def set_columns(campaign: Any, **values: Any) -> Any:
    """Write campaign columns directly (e.g. use up the retries) and return it reloaded."""
    table = get_state().models.campaign.__table__
    hostapp.db.session.execute(
        sa.update(table).where(table.c.id == campaign.id).values(column_values(table, **values))
    )
    hostapp.db.session.commit()
    return reload(campaign)
