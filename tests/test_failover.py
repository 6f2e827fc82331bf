"""Provider failover: the fake Mailgun down for the whole send, the sandbox provider as the
fallback; the breaker opens on outage-type failures only, closes on a successful probe, and never
hands an UNCERTAIN recipient to the fallback. Events reach a signed admin webhook once each."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from werkzeug.serving import make_server

from flask_campaign_retry import (
    ConfigurationError,
    EmailStatus,
    FailureKind,
    ProviderError,
    RecipientStatus,
)
from flask_campaign_retry.alerts.signing import verify_signature
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.failover import Breaker, is_outage, with_failover
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import batches, campaign_with, drain, emails, recipient_rows, reload
from tests.test_admin_webhook import SECRET, Receiver, webhook_app

SIGNATURE_HEADER = "X-Campaign-Retry-Signature"
TIMESTAMP_HEADER = "X-Campaign-Retry-Timestamp"


@pytest.fixture(name="receiver")
def fixture_receiver() -> Iterator[Receiver]:
    """An admin-webhook receiver on loopback (see tests/test_admin_webhook.py)."""
    target = Receiver()
    server = make_server("127.0.0.1", 0, target, threaded=True)
    target.url = f"http://127.0.0.1:{server.server_port}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield target
    server.shutdown()
    thread.join(5)


def failover_app(make_app: Callable[..., Flask], urls: list[str], **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "CAMPAIGN_RETRY_FALLBACK_PROVIDER": "sandbox",
        "CAMPAIGN_RETRY_BREAKER_THRESHOLD": 2,
        "CAMPAIGN_RETRY_BREAKER_COOLDOWN": 3600,
        "CAMPAIGN_RETRY_BATCH_SIZE": 10,
        "CAMPAIGN_RETRY_BATCH_MAX_TRIES": 5,
        "CAMPAIGN_RETRY_AUTO_RETRY": True,
        "CAMPAIGN_RETRY_BACKOFF_BASE": 0.1,
        "CAMPAIGN_RETRY_BACKOFF_CAP": 0.2,
    }
    config.update(overrides)
    return webhook_app(make_app, urls, **config)


def provider_events(receiver: Receiver) -> list[dict[str, Any]]:
    return [e for e in receiver.events() if e["event"].startswith("provider.")]


def sent(campaign: Any) -> Callable[[], bool]:
    return lambda: reload(campaign).status is EmailStatus.SENT


def test_primary_down_for_the_whole_send_fallback_sends_everyone_once(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    app = failover_app(make_app, [receiver.url])
    with app.app_context():
        mailgun.add_fault(FaultRule(status=500))  # Mailgun is down the whole time
        addresses = emails(60)
        campaign = campaign_with(addresses)
        hostapp.retry.send(campaign)
        drain(app, until=sent(campaign))
        drain(app, until=lambda: len(provider_events(receiver)) >= 1)

        fallback = get_state().fallback_provider(app)
        assert fallback is not None
        assert mailgun.accepted_emails() == {}
        assert mailgun.request_count == 2  # the run that opened the breaker, nothing after
        assert fallback.accepted_emails() == {address: 1 for address in addresses}
        campaign = reload(campaign)
        assert (campaign.status, campaign.successful_sends) == (EmailStatus.SENT, 60)
        assert {b.provider for b in batches(campaign)} == {"sandbox"}
        report = hostapp.retry.delivery(campaign)
        assert report["attempts"][0]["providers"] == {"sandbox": 6}
        [event] = provider_events(receiver)
        assert (event["event"], event["provider"], event["fallback_provider"]) == (
            "provider.failover",
            "mailgun",
            "sandbox",
        )
        assert event["consecutive_failures"] == 2
        [item] = [r for r in receiver.received if b"provider.failover" in r.body]
        assert verify_signature(
            SECRET, item.headers[TIMESTAMP_HEADER], item.body, item.headers[SIGNATURE_HEADER]
        )


def test_a_primary_that_answers_again_closes_the_breaker(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    app = failover_app(
        make_app,
        [receiver.url],
        CAMPAIGN_RETRY_BREAKER_THRESHOLD=1,
        CAMPAIGN_RETRY_BREAKER_COOLDOWN=60,
    )
    with app.app_context():
        mailgun.add_fault(FaultRule(status=503, times=1))  # one outage-type failure, then up
        first = campaign_with(emails(4, prefix="a"), "a")
        hostapp.retry.send(first)
        drain(app, until=sent(first))
        assert {b.provider for b in batches(first)} == {"sandbox"}
        breaker = Breaker(get_state(), get_state().queue(app).connection, "mailgun")
        assert breaker.route(utcnow()) == "open"

        # Past the cooldown a probe goes to Mailgun, which accepts: the breaker closes.
        with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61), tick=True):
            second = campaign_with(emails(4, prefix="b"), "b")
            hostapp.retry.send(second)
            drain(app, until=sent(second))
            assert {b.provider for b in batches(second)} == {"mailgun"}
            assert breaker.route(utcnow()) == "closed"
        drain(app, until=lambda: len(provider_events(receiver)) >= 2)
        events = provider_events(receiver)
        assert [e["event"] for e in events] == ["provider.failover", "provider.recovered"]
        assert events[0]["episode"] == events[1]["episode"]
        assert set(mailgun.accepted_emails()) == set(emails(4, prefix="b"))


def test_rate_limits_and_permanent_refusals_never_open_the_breaker(
    make_app: Callable[..., Flask], mailgun: Any
) -> None:
    app = make_app(
        CAMPAIGN_RETRY_FALLBACK_PROVIDER="sandbox",
        CAMPAIGN_RETRY_BREAKER_THRESHOLD=1,
        CAMPAIGN_RETRY_BATCH_SIZE=2,
        CAMPAIGN_RETRY_AUTO_RETRY=False,
        CAMPAIGN_RETRY_BATCH_MAX_TRIES=1,
    )
    with app.app_context():
        mailgun.add_fault(FaultRule(status=429, match=r"user00000[01]@"))
        mailgun.add_fault(FaultRule(status=400, match=r"user00000[23]@"))
        campaign = campaign_with(emails(6))
        hostapp.retry.send(campaign)
        drain(app)
        assert {b.provider for b in batches(campaign)} == {"mailgun"}
        fallback = get_state().fallback_provider(app)
        assert fallback is not None and fallback.accepted_emails() == {}
        breaker = Breaker(get_state(), get_state().queue(app).connection, "mailgun")
        assert breaker.route(utcnow()) == "closed"


def test_uncertain_recipients_stay_with_the_primary_while_the_breaker_is_open(
    make_app: Callable[..., Flask], mailgun: Any
) -> None:
    app = make_app(
        CAMPAIGN_RETRY_FALLBACK_PROVIDER="sandbox",
        CAMPAIGN_RETRY_BREAKER_THRESHOLD=1,
        CAMPAIGN_RETRY_BREAKER_COOLDOWN=3600,
        CAMPAIGN_RETRY_BATCH_SIZE=2,
        CAMPAIGN_RETRY_AUTO_RETRY=False,
        CAMPAIGN_RETRY_BATCH_MAX_TRIES=1,
    )
    with app.app_context():
        mailgun.add_fault(FaultRule(status=504, match=r"user00000[01]@", times=1))
        campaign = campaign_with(emails(4))
        hostapp.retry.send(campaign)
        drain(app)
        rows = recipient_rows(campaign)
        unknown = {"user000000@example.com", "user000001@example.com"}
        assert {e for e, r in rows.items() if r.status is RecipientStatus.UNCERTAIN} == unknown
        # The 504 (a gateway gave up) opened the breaker; the next batch went to the fallback.
        fallback = get_state().fallback_provider(app)
        assert fallback is not None
        assert set(fallback.accepted_emails()) == {
            "user000002@example.com",
            "user000003@example.com",
        }
        # A person includes the unknown ones in a retry: they go to Mailgun, never the fallback.
        campaign = reload(campaign)
        hostapp.retry.retry(campaign, include_uncertain=True)
        drain(app)
        assert set(fallback.accepted_emails()) == {
            "user000002@example.com",
            "user000003@example.com",
        }
        assert set(mailgun.accepted_emails()) == unknown
        retry_batches = [
            b for b in batches(campaign) if b.attempt_id != batches(campaign)[0].attempt_id
        ]
        assert [b.provider for b in retry_batches] == ["mailgun"]


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ProviderError(FailureKind.TRANSIENT, "500", code=500), True),
        (ProviderError(FailureKind.TRANSIENT, "connect"), True),
        (ProviderError(FailureKind.UNCERTAIN, "gateway", code=502), True),
        (ProviderError(FailureKind.TRANSIENT, "429", code=429), False),
        (ProviderError(FailureKind.TRANSIENT, "420", code=420), False),
        (
            ProviderError(
                FailureKind.TRANSIENT, "quota", code=None, resume_at=datetime(2026, 1, 1)
            ),
            False,
        ),
        (ProviderError(FailureKind.TRANSIENT, "408", code=408), False),
        (ProviderError(FailureKind.PERMANENT, "400", code=400), False),
        (ProviderError(FailureKind.FATAL, "401", code=401), False),
        (ProviderError(FailureKind.UNCERTAIN, "read timeout"), False),
    ],
)
def test_outage_type_failures(error: ProviderError, outage: bool) -> None:
    assert is_outage(error) is outage


def test_fallback_configuration_is_validated(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError, match="the same as CAMPAIGN_RETRY_PROVIDER"):
        make_app(CAMPAIGN_RETRY_FALLBACK_PROVIDER="mailgun")
    with pytest.raises(ConfigurationError, match="CAMPAIGN_RETRY_FALLBACK_PROVIDER must be"):
        make_app(CAMPAIGN_RETRY_FALLBACK_PROVIDER=3)
    with pytest.raises(ConfigurationError, match="CAMPAIGN_RETRY_BREAKER_THRESHOLD"):
        make_app(CAMPAIGN_RETRY_BREAKER_THRESHOLD=0)


def test_without_a_fallback_nothing_changes(app: Flask, mailgun: Any) -> None:
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)
    assert reload(campaign).status is EmailStatus.SENT
    assert {b.provider for b in batches(campaign)} == {"mailgun"}
    table = get_state().models.batch.__table__
    assert (
        hostapp.db.session.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.provider.is_(None))
        ).scalar_one()
        == 0
    )


def test_every_worker_sees_the_same_breaker(make_app: Callable[..., Flask], mailgun: Any) -> None:
    """Two apps on the same Redis queue (two worker processes): one opens the breaker, the
    other routes its next batch to the fallback."""
    config = {"CAMPAIGN_RETRY_FALLBACK_PROVIDER": "sandbox", "CAMPAIGN_RETRY_BREAKER_THRESHOLD": 2}
    first, second = make_app(**config), make_app(**config)
    with first.app_context():
        breaker = Breaker(get_state(), get_state().queue(first).connection, "mailgun")
        breaker.failed(utcnow())
        breaker.failed(utcnow())
    with second.app_context():
        state = get_state()
        key, provider = with_failover(state, second, "mailgun", state.provider(second), 0)
        assert (key, provider) == ("sandbox", state.fallback_provider(second))
