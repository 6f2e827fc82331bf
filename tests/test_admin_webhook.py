"""Admin webhook: events of a real failed campaign, signed deliveries to a loopback receiver,
backoff through RQ's scheduler, deduplication, the rate limit, and refused targets that are
never contacted (this machine forbids traffic to private ranges: those tests assert that no
socket is opened to them at all)."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.alerts.config import load_webhook_options
from flask_campaign_retry.alerts.delivery import backoff_delay, post_signed, rate_limit_wait
from flask_campaign_retry.alerts.notify import events_for, notify_attempt_finished
from flask_campaign_retry.alerts.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    signature_headers,
    verify_signature,
)
from flask_campaign_retry.alerts.store import Delivery, get_delivery, namespace
from flask_campaign_retry.alerts.targets import (
    TargetRefused,
    check_target,
    refusal_reason,
    validate_webhook_url,
)
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, campaign_with, drain, emails, reload

SECRET = "whsec-Adm1nW3bh00k-do-not-log"
PATH_TOKEN = "tok-P4thT0ken"


# --- a receiver on loopback -------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A WSGI server on 127.0.0.1 that records requests and answers scripted statuses."""

    url: str = ""
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.received.append(Received(dict(request.headers), request.get_data()))
            status = self.answers.pop(0) if self.answers else 204
        return Response(status=status)(environ, start_response)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(item.body) for item in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    target = Receiver()
    server = make_server("127.0.0.1", 0, target, threaded=True)
    target.url = f"http://127.0.0.1:{server.server_port}/hook/{PATH_TOKEN}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield target
    server.shutdown()
    thread.join(5)


def webhook_app(make_app: Callable[..., Flask], urls: list[str], **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS": urls,
        "CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET": SECRET,
        "CAMPAIGN_RETRY_ADMIN_WEBHOOK_ALLOW_PRIVATE": True,
        "CAMPAIGN_RETRY_ADMIN_WEBHOOK_THRESHOLD": 5,
        "CAMPAIGN_RETRY_ADMIN_WEBHOOK_BACKOFF_BASE": 0.05,
        "CAMPAIGN_RETRY_ADMIN_WEBHOOK_BACKOFF_CAP": 0.1,
        "CAMPAIGN_RETRY_BATCH_MAX_TRIES": 1,
        "CAMPAIGN_RETRY_AUTO_RETRY": False,
    }
    config.update(overrides)
    return make_app(**config)


def failed_campaign(mailgun: Any, n: int = 3) -> tuple[Any, Any]:
    """Send a campaign that every Mailgun call answers with 500; return it and its attempt."""
    mailgun.add_fault(FaultRule(status=500))
    campaign = campaign_with(emails(n))
    hostapp.retry.send(campaign)
    drain(app_of())
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    return campaign, attempts(campaign)[-1]


def app_of() -> Flask:
    from flask import current_app

    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def deliveries() -> list[Delivery]:
    """Every delivery this app stored (the namespace is unique to the test's queue)."""
    state = get_state()
    connection = state.queue(app_of()).connection
    prefix = f"{namespace(state)}:delivery:"
    found = []
    for key in connection.scan_iter(match=f"{prefix}*"):
        tail = key.decode().removeprefix(prefix)
        if tail.isdigit():
            delivery = get_delivery(state, connection, int(tail))
            assert delivery is not None
            found.append(delivery)
    return sorted(found, key=lambda d: d.id)


def settled(delivery_states: set[str] | None = None) -> Callable[[], bool]:
    wanted = delivery_states or {"delivered", "refused", "gave_up"}

    def check() -> bool:
        stored = deliveries()
        return bool(stored) and all(d.state in wanted for d in stored)

    return check


# --- delivery to a real receiver --------------------------------------------------------------


def test_receiver_on_loopback_gets_a_signed_event_it_verifies(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    app = webhook_app(make_app, [receiver.url])
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)
        notify_attempt_finished(get_state(), campaign, attempt, campaign.status)
        drain(app, until=settled())

        [item] = receiver.received
        assert verify_signature(
            SECRET, item.headers[TIMESTAMP_HEADER], item.body, item.headers[SIGNATURE_HEADER]
        )
        assert not verify_signature(
            "another secret",
            item.headers[TIMESTAMP_HEADER],
            item.body,
            item.headers[SIGNATURE_HEADER],
        )
        assert item.headers["Content-Type"] == "application/json"
        assert item.headers["X-Campaign-Retry-Event"] == "campaign.failed"
        event = json.loads(item.body)
        assert event["event"] == "campaign.failed"
        assert event["campaign_id"] == campaign.id
        assert event["status"] == "FAILED"
        assert event["failure_reason"] == campaign.failure_reason
        assert "did not get the email" in event["failure_reason"]
        assert event["failed_at"].endswith("Z")
        assert (event["retry_count"], event["max_retries"]) == (0, campaign.max_retries)
        assert (event["successful_sends"], event["total_recipients"]) == (0, 3)
        assert event["attempt_number"] == attempt.number == 1
        assert event["attempt_outcome"] == "FAILED"
        assert event["consecutive_failed_attempts"] == 1
        assert event["next_auto_retry_at"] is None  # CAMPAIGN_RETRY_AUTO_RETRY is off here
        assert SECRET not in item.body.decode()
        assert len(event["event_id"]) == 32 and event["occurred_at"].endswith("Z")
        [stored] = deliveries()
        assert (stored.state, stored.tries, stored.last_status) == ("delivered", 1, 204)


def test_receiver_answering_500_twice_gets_the_event_on_the_third_try(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    receiver.answers = [500, 500]
    app = webhook_app(make_app, [receiver.url])
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)
        notify_attempt_finished(get_state(), campaign, attempt, campaign.status)
        drain(app, until=settled(), timeout=20)

        assert len(receiver.received) == 3
        bodies = {item.body for item in receiver.received}
        assert len(bodies) == 1  # the same event, re-signed at each try
        for item in receiver.received:
            assert verify_signature(
                SECRET, item.headers[TIMESTAMP_HEADER], item.body, item.headers[SIGNATURE_HEADER]
            )
        [stored] = deliveries()
        assert (stored.state, stored.tries, stored.last_status) == ("delivered", 3, 204)


def test_the_same_event_is_not_delivered_twice(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    app = webhook_app(make_app, [receiver.url])
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)
        state = get_state()
        notify_attempt_finished(state, campaign, attempt, campaign.status)
        again = notify_attempt_finished(state, campaign, attempt, campaign.status)
        assert again == []
        drain(app, until=settled())
        drain(app)
        assert [e["event"] for e in receiver.events()] == ["campaign.failed"]
        assert len(deliveries()) == 1


def test_a_failing_receiver_changes_nothing_on_the_campaign(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    receiver.answers = [500] * 10
    app = webhook_app(make_app, [receiver.url], CAMPAIGN_RETRY_ADMIN_WEBHOOK_MAX_TRIES=2)
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)
        before = (
            campaign.status,
            campaign.failed_at,
            campaign.failure_reason,
            campaign.retry_count,
            campaign.successful_sends,
            len(attempts(campaign)),
        )
        notify_attempt_finished(get_state(), campaign, attempt, campaign.status)
        drain(app, until=settled())

        [stored] = deliveries()
        assert (stored.state, stored.tries, stored.last_error) == ("gave_up", 2, "HTTP 500")
        assert len(receiver.received) == 2
        campaign = reload(campaign)
        after = (
            campaign.status,
            campaign.failed_at,
            campaign.failure_reason,
            campaign.retry_count,
            campaign.successful_sends,
            len(attempts(campaign)),
        )
        assert after == before


def test_notify_never_raises_when_redis_is_down(
    make_app: Callable[..., Flask],
    mailgun: Any,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis

    app = webhook_app(make_app, [receiver.url])
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)

        def down(*args: Any, **kwargs: Any) -> Any:
            raise redis.ConnectionError("Connection refused")

        monkeypatch.setattr(redis.Redis, "set", down)
        assert notify_attempt_finished(get_state(), campaign, attempt, campaign.status) == []
        assert "Redis is unavailable (ConnectionError)" in caplog.text


def test_an_event_whose_enqueue_failed_can_be_queued_again(
    make_app: Callable[..., Flask],
    mailgun: Any,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis

    from flask_campaign_retry.queue.backend import QueueBackend

    app = webhook_app(make_app, [receiver.url])
    with app.app_context():
        campaign, first = failed_campaign(mailgun)
        # An attempt that never went through finalize, so no wiring has notified it yet.
        attempt = type(first)(campaign_id=campaign.id, number=2, trigger="manual", outcome="FAILED")
        hostapp.db.session.add(attempt)
        hostapp.db.session.commit()
        real_enqueue = QueueBackend.enqueue

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise redis.ConnectionError("Connection reset by peer")

        monkeypatch.setattr(QueueBackend, "enqueue", broken)
        assert notify_attempt_finished(get_state(), campaign, attempt, campaign.status) == []
        monkeypatch.setattr(QueueBackend, "enqueue", real_enqueue)
        assert len(notify_attempt_finished(get_state(), campaign, attempt, campaign.status)) == 1
        drain(app, until=settled())
        assert [e["event"] for e in receiver.events() if e["attempt_number"] == 2] == [
            "campaign.failed"
        ]


# --- refused targets: never contacted ---------------------------------------------------------

FORBIDDEN = {
    "http://169.254.169.254/x": "cloud metadata address",
    "http://10.0.0.1/x": "private address",
    "http://[::1]:1/x": "loopback address",
}


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every socket connect; fail before any packet goes to a refused address."""
    attempted: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    refused_hosts = {"169.254.169.254", "10.0.0.1"}

    def forbidden(address: Any) -> bool:
        host, port = address[0], address[1]
        return host in refused_hosts or (host == "::1" and port == 1)

    def connect(self: socket.socket, address: Any) -> Any:
        attempted.append(address)
        if forbidden(address):
            raise AssertionError(f"connection attempted to {address}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        attempted.append(address)
        if forbidden(address):
            raise AssertionError(f"connection attempted to {address}")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return attempted


def forbid_http_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if requests starts any HTTP request (the refusal must come before it)."""

    def no_http(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an HTTP request was started for a refused target")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", no_http)


def test_private_and_metadata_urls_are_refused_before_any_connection(
    make_app: Callable[..., Flask],
    mailgun: Any,
    no_connections: list[Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_campaign_retry")
    app = webhook_app(make_app, list(FORBIDDEN), CAMPAIGN_RETRY_ADMIN_WEBHOOK_ALLOW_PRIVATE=False)
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)  # Mailgun (fake, loopback) uses requests
        forbid_http_requests(monkeypatch)
        notify_attempt_finished(get_state(), campaign, attempt, campaign.status)
        drain(app, until=settled())

        stored = {d.url: d for d in deliveries()}
        assert set(stored) == set(FORBIDDEN)
        for url, reason in FORBIDDEN.items():
            assert stored[url].state == "refused", url
            assert stored[url].tries == 0
            assert reason in (stored[url].last_error or "")
        for address in no_connections:
            assert address[0] not in {"169.254.169.254", "10.0.0.1"}
        refusals = [r for r in caplog.records if "refused, not sent" in r.getMessage()]
        assert len(refusals) == 3
        assert all(r.campaign_retry["reason"] for r in refusals)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("url", "reason"), sorted(FORBIDDEN.items()))
def test_check_target_refuses_without_resolving_or_connecting(
    url: str, reason: str, no_connections: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("literal addresses need no lookup")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(TargetRefused, match=reason):
        check_target(url, allow_private=False)
    with pytest.raises(TargetRefused, match=reason):
        post_signed(url, b"{}", SECRET, allow_private=False, event="campaign.failed")
    assert no_connections == []


def test_metadata_multicast_and_unspecified_stay_refused_when_private_is_allowed() -> None:
    for text in ("169.254.169.254", "fd00:ec2::254", "224.0.0.1", "0.0.0.0", "::", "240.0.0.1"):
        assert refusal_reason(ipaddress.ip_address(text), allow_private=True) is not None, text
    for text in ("127.0.0.1", "::1", "10.0.0.1", "192.168.1.5", "fe80::1", "::ffff:127.0.0.1"):
        assert refusal_reason(ipaddress.ip_address(text), allow_private=True) is None, text


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]) -> None:
    """Resolve names ending in ``.test`` from ``answers`` (one list per successive lookup)."""
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".test"):
            queue = answers[host]
            addresses = queue.pop(0) if len(queue) > 1 else queue[0]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in addresses
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def test_a_name_resolving_to_any_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, no_connections: list[Any]
) -> None:
    fake_dns(
        monkeypatch,
        {
            "internal.test": [["10.0.0.1"]],
            "mixed.test": [["93.184.216.34", "10.0.0.1"]],
            "public.test": [["93.184.216.34", "2606:2800:220:1::1"]],
        },
    )
    with pytest.raises(TargetRefused, match=r"resolves to 10\.0\.0\.1, a private address"):
        check_target("https://internal.test/hook", allow_private=False)
    with pytest.raises(TargetRefused, match="private address"):
        check_target("https://mixed.test/hook", allow_private=False)
    assert check_target("https://public.test/hook", allow_private=False) == [
        "93.184.216.34",
        "2606:2800:220:1::1",
    ]
    assert no_connections == []


def test_dns_rebinding_between_check_and_connect_is_refused_at_connect(
    monkeypatch: pytest.MonkeyPatch, no_connections: list[Any]
) -> None:
    # First lookup public (the delivery check passes), then the record points at 10.0.0.1.
    fake_dns(monkeypatch, {"rebind.test": [["93.184.216.34"], ["10.0.0.1"]]})
    url = "http://rebind.test/hook"
    assert check_target(url, allow_private=False) == ["93.184.216.34"]
    with pytest.raises(TargetRefused, match=r"resolves to 10\.0\.0\.1"):
        post_signed(url, b"{}", SECRET, allow_private=False, event="campaign.failed")
    assert no_connections == []


def test_the_connection_goes_to_the_checked_address_with_the_url_host(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    fake_dns(monkeypatch, {"receiver.test": [["127.0.0.1"]]})
    url = f"http://receiver.test:{port}/hook"
    body = b'{"event":"campaign.failed"}'
    assert post_signed(url, body, SECRET, allow_private=True, event="campaign.failed") == 204
    [item] = receiver.received
    assert item.headers["Host"] == f"receiver.test:{port}"
    assert item.body == body
    with pytest.raises(TargetRefused, match="loopback"):
        post_signed(url, body, SECRET, allow_private=False, event="campaign.failed")
    assert len(receiver.received) == 1


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.answers = [307]
    assert post_signed(receiver.url, b"{}", SECRET, allow_private=True, event="x") == 307
    assert len(receiver.received) == 1


# --- triggers ---------------------------------------------------------------------------------


def test_retries_exhausted_and_repeated_failures_are_raised(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    app = webhook_app(make_app, [receiver.url], CAMPAIGN_RETRY_ADMIN_WEBHOOK_THRESHOLD=1)
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)
        campaign.max_retries = 0
        hostapp.db.session.commit()
        state = get_state()
        assert events_for(campaign, attempt, EmailStatus.FAILED, state.settings) == [
            "campaign.failed",
            "campaign.retries_exhausted",
            "campaign.repeated_failures",
        ]
        assert events_for(campaign, attempt, EmailStatus.SENT, state.settings) == []
        assert events_for(campaign, attempt, "PARTIALLY_SENT", state.settings)[0] == (
            "campaign.partially_sent"
        )
        notify_attempt_finished(state, campaign, attempt, campaign.status)
        drain(app, until=settled())
        events = receiver.events()
        assert sorted(e["event"] for e in events) == [
            "campaign.failed",
            "campaign.repeated_failures",
            "campaign.retries_exhausted",
        ]
        assert len({e["event_id"] for e in events}) == 3


def test_streak_counts_failed_attempts_back_to_the_first_that_did_not_fail(
    make_app: Callable[..., Flask], mailgun: Any
) -> None:
    app = webhook_app(make_app, [], CAMPAIGN_RETRY_ADMIN_WEBHOOK_THRESHOLD=3)
    with app.app_context():
        campaign, first = failed_campaign(mailgun)
        model = type(first)
        rows = []
        for number, outcome in ((2, "PARTIALLY_SENT"), (3, "FAILED"), (4, "FAILED"), (5, "FAILED")):
            row = model(campaign_id=campaign.id, number=number, trigger="manual", outcome=outcome)
            hostapp.db.session.add(row)
            rows.append(row)
        hostapp.db.session.commit()
        settings_ = get_state().settings
        assert "campaign.repeated_failures" not in events_for(
            campaign, rows[1], "FAILED", settings_
        )
        assert "campaign.repeated_failures" in events_for(campaign, rows[3], "FAILED", settings_)


def test_event_filter_and_no_urls_send_nothing(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    app = webhook_app(
        make_app, [receiver.url], CAMPAIGN_RETRY_ADMIN_WEBHOOK_EVENTS=["campaign.retries_exhausted"]
    )
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)
        assert notify_attempt_finished(get_state(), campaign, attempt, campaign.status) == []
        drain(app)
        assert receiver.received == []


def test_a_campaign_that_fails_alerts_the_admin_on_its_own(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver
) -> None:
    app = webhook_app(make_app, [receiver.url])
    with app.app_context():
        campaign, _attempt = failed_campaign(mailgun)  # its drain runs the webhook job too
        drain(app)
        [event] = receiver.events()
        assert (event["event"], event["campaign_id"]) == ("campaign.failed", campaign.id)


# --- rate limit -------------------------------------------------------------------------------


def test_rate_limit_defers_to_the_next_minute_and_drops_nothing(
    make_app: Callable[..., Flask], mailgun: Any, receiver: Receiver, redis_url: str
) -> None:
    app = webhook_app(
        make_app,
        [receiver.url],
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_RATE_LIMIT=1,
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_THRESHOLD=1,
    )
    with app.app_context():
        state = get_state()
        connection = state.queue(app).connection
        t0 = 1_800_000_000.0  # the start of a minute
        assert rate_limit_wait(connection, state, "https://a.example/x", 2, now=t0 + 1) is None
        assert rate_limit_wait(connection, state, "https://a.example/x", 2, now=t0 + 2) is None
        assert rate_limit_wait(connection, state, "https://a.example/x", 2, now=t0 + 45) == 15
        assert rate_limit_wait(connection, state, "https://b.example/x", 2, now=t0 + 45) is None
        assert rate_limit_wait(connection, state, "https://a.example/x", 2, now=t0 + 60) is None

        left = 60 - time.time() % 60
        if left < 3:  # keep both deliveries inside one minute (they take well under a second)
            time.sleep(left + 0.1)
        campaign, attempt = failed_campaign(mailgun)
        notify_attempt_finished(state, campaign, attempt, campaign.status)
        drain(app)
        stored = deliveries()
        assert len(stored) == 2 and len(receiver.received) == 1
        waiting = [d for d in stored if d.state == "pending"]
        assert len(waiting) == 1 and waiting[0].next_try_at is not None
        assert waiting[0].tries == 0
        assert state.queue(app).queue.scheduled_job_registry.count == 1


# --- secrets ----------------------------------------------------------------------------------


def test_no_secret_or_url_path_in_logs_job_payloads_or_redis(
    make_app: Callable[..., Flask],
    mailgun: Any,
    receiver: Receiver,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answers = [500]
    app = webhook_app(make_app, [receiver.url])
    with app.app_context():
        campaign, attempt = failed_campaign(mailgun)
        notify_attempt_finished(get_state(), campaign, attempt, campaign.status)
        drain(app, until=settled())
        assert len(receiver.received) == 2
        connection = get_state().queue(app).connection
        dump = []
        for key in connection.scan_iter():
            kind = connection.type(key)
            if kind == b"hash":
                for name, value in connection.hgetall(key).items():
                    if name == b"data" and isinstance(value, bytes):  # RQ job payloads
                        value = zlib.decompress(value)
                    dump.append(repr(value))
            elif kind == b"string":
                dump.append(repr(connection.get(key)))
        blob = "\n".join(dump)
    assert SECRET not in blob

    def text(records: list[logging.LogRecord]) -> str:
        return "\n".join(
            r.getMessage() + repr(getattr(r, "campaign_retry", "")) + repr(r.args) for r in records
        )

    everything = text(caplog.records)
    ours = text([r for r in caplog.records if r.name.startswith("flask_campaign_retry")])
    assert "admin webhook" in ours and "failed (HTTP 500)" in ours
    assert SECRET not in everything
    # Our records name the target as scheme://host:port only (urllib3's and werkzeug's own
    # DEBUG/INFO records do show the request path; that is the host's logging choice).
    assert PATH_TOKEN not in ours


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com/x",
        "http:///x",
        " http://example.com",
        "http://a/#f",
        "javascript:alert(1)",
        42,
    ],
)
def test_invalid_urls_are_refused_at_configuration_time(url: Any) -> None:
    with pytest.raises(ConfigurationError, match="CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS"):
        validate_webhook_url(url)


def test_delivery_options_are_validated() -> None:
    options = load_webhook_options({})
    assert (options.max_tries, options.backoff_base, options.backoff_cap, options.rate_limit) == (
        6,
        10.0,
        600.0,
        30,
    )
    assert len(options.events) == 6  # four campaign events, two provider events
    for bad in (
        {"CAMPAIGN_RETRY_ADMIN_WEBHOOK_MAX_TRIES": 0},
        {"CAMPAIGN_RETRY_ADMIN_WEBHOOK_RATE_LIMIT": True},
        {
            "CAMPAIGN_RETRY_ADMIN_WEBHOOK_BACKOFF_BASE": 10,
            "CAMPAIGN_RETRY_ADMIN_WEBHOOK_BACKOFF_CAP": 1,
        },
        {"CAMPAIGN_RETRY_ADMIN_WEBHOOK_EVENTS": ["campaign.sent"]},
        {"CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS": ["gopher://x"]},
    ):
        with pytest.raises(ConfigurationError):
            load_webhook_options(bad)


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    secret=st.one_of(st.text(min_size=1), st.binary(min_size=1)),
    body=st.binary(max_size=2000),
    now=st.integers(min_value=0, max_value=4_000_000_000),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_signature_round_trip(secret: str | bytes, body: bytes, now: int, skew: int) -> None:
    headers = signature_headers(secret, body, now=now)
    timestamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert timestamp == str(now) and signature.startswith("v1=")
    assert verify_signature(secret, timestamp, body, signature, now=now + skew)
    assert verify_signature(secret, timestamp, body, signature.removeprefix("v1="), now=now)
    assert not verify_signature(secret, timestamp, body + b"x", signature, now=now)
    assert not verify_signature(secret, str(now + 1), body, signature, now=now)
    assert not verify_signature(secret, timestamp, body, signature, now=now + 301)
    assert not verify_signature(secret, timestamp, body, signature, now=now - 301)


@given(timestamp=st.text(max_size=20), signature=st.text(max_size=80), body=st.binary(max_size=50))
def test_verify_signature_rejects_garbage_without_raising(
    timestamp: str, signature: str, body: bytes
) -> None:
    now = int(timestamp) if timestamp.isascii() and timestamp.isdigit() else None
    assert verify_signature(SECRET, timestamp, body, signature, now=now) is False
    if now is not None:
        good = compute_signature(SECRET, now, body)
        assert verify_signature(SECRET, timestamp, body, f"v1={good.upper()}", now=now)


@given(
    failures=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.0, max_value=100.0),
    extra=st.floats(min_value=0.0, max_value=10_000.0),
)
def test_backoff_stays_within_full_jitter_bounds(failures: int, base: float, extra: float) -> None:
    cap = base + extra
    delay = backoff_delay(failures, base, cap)
    assert 0.0 <= delay <= min(cap, base * 2 ** min(failures - 1, 60))


@given(
    st.one_of(
        st.ip_addresses(network="10.0.0.0/8"),
        st.ip_addresses(network="172.16.0.0/12"),
        st.ip_addresses(network="192.168.0.0/16"),
        st.ip_addresses(network="127.0.0.0/8"),
        st.ip_addresses(network="169.254.0.0/16"),
        st.ip_addresses(network="100.64.0.0/10"),
        st.ip_addresses(network="fc00::/7"),
        st.ip_addresses(network="fe80::/10"),
        st.ip_addresses(network="224.0.0.0/4"),
        st.ip_addresses(network="ff00::/8"),
    )
)
def test_non_public_addresses_are_refused_unless_allowed(address: Any) -> None:
    assert refusal_reason(address, allow_private=False) is not None
    mapped = ipaddress.ip_address(f"::ffff:{address}") if address.version == 4 else None
    if mapped is not None:
        assert refusal_reason(mapped, allow_private=False) is not None
