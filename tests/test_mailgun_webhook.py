"""The Mailgun webhook route: signature, replay and age checks, which events apply, the
ranking that makes duplicates and out-of-order arrivals harmless, delivery counts in the JSON
route and the panel, CSRF exemption. SQLite and PostgreSQL, real Redis, the fake Mailgun."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf.csrf import CSRFProtect
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_campaign_retry import RecipientStatus
from flask_campaign_retry.inbound.mailgun_webhook import parse_event
from flask_campaign_retry.providers.base import LookupOutcome
from flask_campaign_retry.reconciliation.evidence import Evidence, RowState, next_state
from flask_campaign_retry.state import get_state
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from flask_campaign_retry.testing.mailgun_webhooks import signed_webhook
from tests import hostapp
from tests.helpers import batches, campaign_with, drain, emails, recipient_rows, reload
from tests.webapp import add_host_pages

KEY = "test-webhook-signing-key-5f1c9a"
PATH = "/campaigns/webhooks/mailgun"
CONFIG: dict[str, Any] = {
    "MAILGUN_WEBHOOK_SIGNING_KEY": KEY,
    "CAMPAIGN_RETRY_AUTO_RETRY": False,
    "WTF_CSRF_ENABLED": True,
}


@pytest.fixture
def hook_app(make_app: Callable[..., Flask], authorize: Any) -> Iterator[Flask]:
    app = make_app(**CONFIG)
    add_host_pages(app)
    with app.app_context():
        yield app


@pytest.fixture
def client(hook_app: Flask) -> FlaskClient:
    return hook_app.test_client()


def sent_campaign(app: Flask, n: int = 4, name: str = "wh") -> Any:
    campaign = campaign_with(emails(n, prefix=name), list_name=name)
    hostapp.retry.send(campaign)
    drain(app)
    return reload(campaign)


def post(client: FlaskClient, event: dict[str, Any], **signing: Any) -> Any:
    return client.post(PATH, json=signed_webhook(event, KEY, **signing))


def row(campaign: Any, email: str) -> Any:
    return recipient_rows(campaign)[email]


def token_keys(app: Flask) -> list[bytes]:
    return list(get_state(app).queue(app).connection.scan_iter("*mailgun-webhook-token*"))


# -- what is refused --------------------------------------------------------------------------


def test_bad_signature_is_refused_and_nothing_is_written(
    hook_app: Flask, client: FlaskClient, mailgun: FakeMailgun
) -> None:
    campaign = sent_campaign(hook_app)
    event = mailgun.events.deliver("wh000000@example.com")
    body = signed_webhook(event, "another-key")
    before = token_keys(hook_app)

    response = client.post(PATH, json=body)

    assert response.status_code == 406
    assert response.get_json()["status"] == "rejected"
    assert row(campaign, "wh000000@example.com").status is RecipientStatus.SENT
    assert reload(campaign).delivered_count == 0
    assert token_keys(hook_app) == before
    tampered = signed_webhook(event, KEY)
    tampered["signature"]["timestamp"] = str(int(tampered["signature"]["timestamp"]) - 1)
    assert client.post(PATH, json=tampered).status_code == 406


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"event-data": {}}',
        b'{"signature": {"timestamp": "x", "token": "t", "signature": "00"}}',
    ],
)
def test_malformed_bodies_are_refused(client: FlaskClient, body: bytes) -> None:
    response = client.post(PATH, data=body, content_type="application/json")
    assert response.status_code == 406


def test_an_oversized_body_is_refused(client: FlaskClient) -> None:
    body = signed_webhook({"event": "delivered", "padding": "x" * 300_000}, KEY)
    assert client.post(PATH, json=body).status_code == 406


def test_a_signed_body_without_event_data_is_refused(client: FlaskClient) -> None:
    body = signed_webhook({}, KEY)
    del body["event-data"]
    assert client.post(PATH, json=body).status_code == 406


def test_same_token_twice_second_is_refused_with_406(
    hook_app: Flask, client: FlaskClient, mailgun: FakeMailgun
) -> None:
    campaign = sent_campaign(hook_app)
    accepted = mailgun.events.all()[0]
    body = signed_webhook(accepted, KEY)
    first = client.post(PATH, json=body)
    assert (first.status_code, first.get_json()["status"]) == (200, "unchanged")
    # The signature covers only timestamp + token: a replay with another body must not apply.
    delivered = mailgun.events.deliver(accepted["recipient"])
    second = client.post(PATH, json={"signature": body["signature"], "event-data": delivered})
    # README and Mailgun: 406 rejects without retries; nothing is written.
    assert second.status_code == 406
    assert second.get_json() == {
        "status": "rejected",
        "reason": "this token was seen before (replay)",
    }
    assert row(campaign, accepted["recipient"]).status is RecipientStatus.SENT
    assert reload(campaign).delivered_count == 0


@pytest.mark.parametrize("age", [3 * 3600, -600])
def test_timestamps_outside_the_window_are_refused(
    make_app: Callable[..., Flask], mailgun: FakeMailgun, age: int
) -> None:
    app = make_app(**CONFIG, CAMPAIGN_RETRY_WEBHOOK_TOLERANCE=timedelta(hours=2))
    with app.app_context():
        campaign = sent_campaign(app)
        event = mailgun.events.deliver("wh000001@example.com")
        response = app.test_client().post(
            PATH, json=signed_webhook(event, KEY, timestamp=int(time.time()) - age)
        )
        assert response.status_code == 406
        assert row(campaign, "wh000001@example.com").status is RecipientStatus.SENT
        fresh = signed_webhook(event, KEY, timestamp=int(time.time()) - 3600)
        assert app.test_client().post(PATH, json=fresh).get_json()["status"] == "changed"


def test_missing_signing_key_answers_503(make_app: Callable[..., Flask], caplog: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False)
    response = app.test_client().post(PATH, json=signed_webhook({}, KEY))
    assert response.status_code == 503
    assert "MAILGUN_WEBHOOK_SIGNING_KEY is not set" in caplog.text


def test_a_bad_tolerance_fails_at_init(make_app: Callable[..., Flask]) -> None:
    from flask_campaign_retry.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CAMPAIGN_RETRY_WEBHOOK_TOLERANCE"):
        make_app(CAMPAIGN_RETRY_WEBHOOK_TOLERANCE=-5)


# -- what is ignored --------------------------------------------------------------------------


def test_events_that_do_not_match_a_batch_we_sent_are_ignored(
    hook_app: Flask, client: FlaskClient, mailgun: FakeMailgun
) -> None:
    campaign = sent_campaign(hook_app)
    event = mailgun.events.deliver("wh000002@example.com")
    variables = event["user-variables"]
    other_email = "wh000003@example.com"
    variants = {
        "unknown batch": {**event, "user-variables": {**variables, "campaign_retry_batch": "999"}},
        "other campaign": {
            **event,
            "user-variables": {**variables, "campaign_retry_campaign": "999"},
        },
        "other attempt": {**event, "user-variables": {**variables, "campaign_retry_attempt": "9"}},
        "address differs": {**event, "recipient": other_email},
        "no variables": {**event, "user-variables": {}},
        "garbage id": {**event, "user-variables": {**variables, "campaign_retry_recipient": "x"}},
        "opened": {**event, "event": "opened"},
    }
    for name, variant in variants.items():
        response = post(client, variant)
        assert response.status_code == 200, name
        assert response.get_json()["status"] == "ignored", name
    assert {r.status for r in recipient_rows(campaign).values()} == {RecipientStatus.SENT}
    assert reload(campaign).delivered_count == 0


# -- what is applied --------------------------------------------------------------------------


def test_delivery_counts_reach_the_json_route_and_the_panel(
    hook_app: Flask, client: FlaskClient, mailgun: FakeMailgun
) -> None:
    campaign = sent_campaign(hook_app, n=4)
    for email in ("wh000000@example.com", "wh000001@example.com", "wh000000@example.com"):
        assert post(client, mailgun.events.deliver(email)).status_code == 200
    rows = recipient_rows(campaign)
    assert rows["wh000000@example.com"].status is RecipientStatus.DELIVERED
    assert rows["wh000000@example.com"].delivered_at is not None

    report = client.get(f"/campaigns/{campaign.id}/delivery").get_json()
    assert report["delivered_count"] == 2
    assert report["recipients"]["DELIVERED"] == 2
    page = client.get(f"/host/campaigns/{campaign.id}").get_data(as_text=True)
    assert "2 confirmed delivered by the provider." in page


def test_final_states_are_never_downgraded(
    hook_app: Flask, client: FlaskClient, mailgun: FakeMailgun
) -> None:
    campaign = sent_campaign(hook_app, n=4)
    a, b, c, d = (f"wh00000{i}@example.com" for i in range(4))
    accepted = {e["recipient"]: e for e in mailgun.events.all()}

    post(client, mailgun.events.fail(a, severity="temporary", reason="generic", code=452))
    assert row(campaign, a).status is RecipientStatus.SENT
    assert row(campaign, a).error_message.startswith("Delivery delayed")
    post(client, mailgun.events.deliver(a))  # a delivery after a temporary failure wins
    post(client, accepted[a])  # a late "accepted" changes nothing
    post(client, mailgun.events.fail(a))  # nor does a later permanent failure
    assert (row(campaign, a).status, row(campaign, a).error_message) == (
        RecipientStatus.DELIVERED,
        None,
    )

    post(client, mailgun.events.fail(b, severity="temporary", reason="old", code=0))
    b_row = row(campaign, b)
    assert (b_row.status, b_row.failure_kind) == (RecipientStatus.FAILED, "permanent")
    assert "old" in b_row.error_message
    post(client, mailgun.events.fail(c, code=550))
    post(client, mailgun.events.fail(c, severity="temporary", reason="generic"))
    assert row(campaign, c).status is RecipientStatus.FAILED
    assert row(campaign, c).error_code == 550
    assert reload(campaign).delivered_count == 1
    assert row(campaign, d).status is RecipientStatus.SENT


def test_accepted_settles_an_uncertain_recipient(
    hook_app: Flask, client: FlaskClient, mailgun: FakeMailgun
) -> None:
    campaign = sent_campaign(hook_app, n=2)
    recipients = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        recipients.update()
        .where(recipients.c.campaign_id == campaign.id)
        .values(status=RecipientStatus.UNCERTAIN, failure_kind="uncertain", error_message="?")
    )
    hostapp.db.session.commit()
    accepted = mailgun.events.all()[0]
    assert post(client, accepted).get_json()["status"] == "changed"
    settled = row(campaign, accepted["recipient"])
    assert (settled.status, settled.failure_kind, settled.error_message) == (
        RecipientStatus.SENT,
        None,
        None,
    )


def test_a_failed_request_releases_its_token_for_mailguns_retry(
    hook_app: Flask, client: FlaskClient, mailgun: FakeMailgun, monkeypatch: Any
) -> None:
    campaign = sent_campaign(hook_app, n=1)
    body = signed_webhook(mailgun.events.deliver("wh000000@example.com"), KEY)

    def broken(*args: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr("flask_campaign_retry.inbound.mailgun_webhook.apply_evidence", broken)
    hook_app.config["PROPAGATE_EXCEPTIONS"] = False
    assert client.post(PATH, json=body).status_code == 500
    monkeypatch.undo()
    assert client.post(PATH, json=body).get_json()["status"] == "changed"
    assert reload(campaign).delivered_count == 1


def test_redis_down_answers_503(
    hook_app: Flask, client: FlaskClient, mailgun: FakeMailgun, monkeypatch: Any
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    sent_campaign(hook_app, n=1)
    connection = get_state().queue(hook_app).connection

    def down(*args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("refused")

    monkeypatch.setattr(connection, "set", down)
    response = post(client, mailgun.events.deliver("wh000000@example.com"))
    assert response.status_code == 503


@pytest.mark.parametrize("csrf_first", [True, False])
def test_exempt_from_the_hosts_csrf_protection(
    database_url: str, redis_url: str, authorize: Any, csrf_first: bool
) -> None:
    app = Flask("csrfhost")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        SECRET_KEY="s",
        CAMPAIGN_RETRY_REDIS_URL=redis_url,
        CAMPAIGN_RETRY_QUEUE=f"csrf{random.randrange(10**9)}",
        CAMPAIGN_RETRY_PROVIDER="sandbox",
        MAILGUN_WEBHOOK_SIGNING_KEY=KEY,
    )
    csrf = CSRFProtect()
    if csrf_first:
        csrf.init_app(app)
    hostapp.db.init_app(app)
    hostapp.retry.init_app(app, db=hostapp.db, campaign_model=hostapp.Campaign)
    if not csrf_first:
        csrf.init_app(app)
    client = app.test_client()
    event = {"event": "opened", "recipient": "x@example.com"}
    response = client.post(PATH, json=signed_webhook(event, KEY))
    assert (response.status_code, response.get_json()["status"]) == (200, "ignored")
    assert client.post("/campaigns/1/retry").status_code == 400  # the others still need a token
    assert "session" not in response.headers.get("Set-Cookie", "")


# -- order and duplicates do not matter -------------------------------------------------------

KINDS = ("accepted", "delayed", "bounce", "old", "delivered")
CODES = (421, 452, 550, 554)
TEXTS = ("mailbox full", "no such user", "greylisted")
START_STATES = (
    RowState(RecipientStatus.SENT),
    RowState(RecipientStatus.UNCERTAIN, "uncertain", None, "read timeout"),
    RowState(RecipientStatus.FAILED, "transient", 500, "HTTP 500 from Mailgun"),
    RowState(RecipientStatus.PENDING),
)


def _event(base: dict[str, Any], kind: str, stamp: float, code: int, text: str) -> dict[str, Any]:
    event = {**base, "timestamp": stamp, "id": f"e{stamp}"}
    if kind == "accepted":
        return {**event, "event": "accepted"}
    if kind == "delivered":
        return {**event, "event": "delivered", "delivery-status": {"code": 250}}
    severity, reason = {
        "delayed": ("temporary", "generic"),
        "bounce": ("permanent", "bounce"),
        "old": ("temporary", "old"),
    }[kind]
    status = {"code": code, "description": text}
    return {**event, "event": "failed", "severity": severity, "reason": reason} | {
        "delivery-status": status
    }


def _evidence(kind: str, stamp: float, code: int, text: str) -> Evidence:
    parsed = parse_event(_event(TEMPLATE, kind, stamp, code, text))
    assert not isinstance(parsed, str)
    return parsed[1]


TEMPLATE: dict[str, Any] = {
    "recipient": "x@example.com",
    "user-variables": {
        "campaign_retry_campaign": "1",
        "campaign_retry_attempt": "1",
        "campaign_retry_batch": "1",
        "campaign_retry_recipient": "1",
    },
}


def _fold(start: RowState, evidence: list[Evidence]) -> RowState:
    state = start
    for item in evidence:
        state = next_state(state, item) or state
    return state


@settings(max_examples=400, deadline=None)
@given(
    start=st.sampled_from(START_STATES),
    plan=st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.integers(0, 40),
            st.sampled_from(CODES),
            st.sampled_from(TEXTS),
        ),
        min_size=1,
        max_size=12,
    ),
    order=st.randoms(use_true_random=False),
)
def test_the_ranking_ignores_order_and_duplicates(
    start: RowState, plan: list[tuple[str, int, int, str]], order: Any
) -> None:
    base = time.time()
    unique = [
        _evidence(kind, base + n * 60 + jitter, code, text)
        for n, (kind, jitter, code, text) in enumerate(plan)
    ]
    arrivals = unique + order.choices(unique, k=len(unique))
    order.shuffle(arrivals)
    in_order = _fold(start, sorted(unique, key=lambda e: e.at))
    assert _fold(start, arrivals) == in_order
    kinds = {e.kind for e in unique}
    if LookupOutcome.DELIVERED in kinds:
        delivered = [e.at for e in unique if e.kind is LookupOutcome.DELIVERED]
        assert in_order == RowState(RecipientStatus.DELIVERED, delivered_at=min(delivered))
    elif LookupOutcome.FAILED_PERMANENT in kinds:
        assert (in_order.status, in_order.failure_kind) == (RecipientStatus.FAILED, "permanent")
    elif start.status is RecipientStatus.PENDING:
        assert in_order == start  # the send engine owns rows it has not submitted
    else:
        assert in_order.status is RecipientStatus.SENT


def _prepare(app: Flask) -> tuple[Any, list[dict[str, Any]], list[RowState]]:
    """A sent campaign of 50 whose rows start in each of START_STATES; returns it with one
    event template (variables, address) per recipient and the rows' starting states."""
    campaign = campaign_with(emails(50, prefix="order"), list_name="order")
    hostapp.retry.send(campaign)
    drain(app)
    [batch] = batches(campaign)
    recipients = get_state().models.recipient.__table__
    rows = sorted(recipient_rows(campaign).values(), key=lambda r: r.email)
    starts = [START_STATES[i % len(START_STATES)] for i in range(len(rows))]
    for r, start in zip(rows, starts, strict=True):
        hostapp.db.session.execute(
            recipients.update()
            .where(recipients.c.id == r.id)
            .values(
                status=start.status,
                failure_kind=start.failure_kind,
                error_code=start.error_code,
                error_message=start.error_message,
            )
        )
    hostapp.db.session.commit()
    templates = [
        {
            "recipient": r.email,
            "user-variables": {
                "campaign_retry_campaign": str(campaign.id),
                "campaign_retry_attempt": str(batch.attempt_id),
                "campaign_retry_batch": str(batch.id),
                "campaign_retry_recipient": str(r.id),
            },
        }
        for r in rows
    ]
    return campaign, templates, starts


def test_1000_events_in_any_order_with_duplicates_end_as_applied_once_in_order(
    hook_app: Flask, client: FlaskClient
) -> None:
    order = random.Random(20240501)
    campaign, templates, starts = _prepare(hook_app)
    base = time.time() - 3600
    unique = [
        (
            order.randrange(50),
            order.choice(KINDS),
            base + n,
            order.choice(CODES),
            order.choice(TEXTS),
        )
        for n in range(850)
    ]
    arrivals = [
        _event(templates[i], kind, stamp, code, text) for i, kind, stamp, code, text in unique
    ]
    arrivals += order.sample(arrivals, 150)  # 150 delivered twice: 1,000 requests
    order.shuffle(arrivals)

    for event in arrivals:
        assert post(client, event).status_code == 200

    expected = [
        _fold(start, [_evidence(k, t, c, x) for i, k, t, c, x in unique if i == index])
        for index, start in enumerate(starts)
    ]
    rows = sorted(recipient_rows(campaign).values(), key=lambda r: r.email)
    found = [
        RowState(r.status, r.failure_kind, r.error_code, r.error_message, r.delivered_at)
        for r in rows
    ]
    assert found == expected
    delivered = sum(1 for state in expected if state.status is RecipientStatus.DELIVERED)
    assert delivered > 0 and reload(campaign).delivered_count == delivered
