"""Branches of Mailgun event reading, campaign-id lookup and admin-webhook target checks that
the behaviour tests do not reach: odd event fields, failing Events API pages, hosts whose
campaign key is a UUID, text or custom type, IPv4 embedded in IPv6, and connection failures."""

from __future__ import annotations

import http.server
import ipaddress
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from flask_campaign_retry import CampaignMixin, CampaignRetry
from flask_campaign_retry.alerts import targets
from flask_campaign_retry.alerts.targets import (
    TargetRefused,
    check_target,
    guarded_session,
    redact_url,
    refusal_reason,
    safe_addresses,
    validate_webhook_url,
)
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.base import (
    BatchRecipient,
    BatchRef,
    LookupOutcome,
    ProviderError,
    RecipientLookup,
)
from flask_campaign_retry.providers.mailgun import events
from flask_campaign_retry.providers.mailgun.events import (
    event_message_id,
    event_time,
    failure_details,
    fold_events,
    walk_events,
)
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import FailureKind
from flask_campaign_retry.web.lookup import id_problem, load_campaign, max_integer_id

# --- Mailgun events: reading one event ----------------------------------------------------------


def test_a_numeric_text_code_is_read_as_a_number_and_odd_codes_are_dropped() -> None:
    """failure_details turns a digit-string code into an int and ignores bools and long digits."""
    assert failure_details(
        {"reason": "bounce", "delivery-status": {"code": "550", "message": "no such user"}}
    ) == (550, "bounce: no such user")
    assert failure_details({"reason": "bounce", "delivery-status": {"code": "1234567"}}) == (
        None,
        "bounce",
    )
    assert failure_details({"reason": "bounce", "delivery-status": {"code": True}}) == (
        None,
        "bounce",
    )
    assert failure_details({"delivery-status": "not a mapping"}) == (None, "unknown reason")


def test_reason_old_without_a_description_says_mailgun_stopped_retrying() -> None:
    """A failure with reason "old" and no text explains that Mailgun gave up retrying."""
    code, text = failure_details({"reason": "old", "delivery-status": {"description": "  "}})
    assert (code, text) == (None, "old: Mailgun stopped retrying after several hours")
    # With a text of its own, that text is kept instead.
    assert failure_details({"reason": "old", "delivery-status": {"message": "gave up"}}) == (
        None,
        "old: gave up",
    )


@pytest.mark.parametrize("value", [True, None, [1.0], {"t": 1}, "soon", 1e300, "nan"])
def test_an_unusable_timestamp_has_no_time(value: Any) -> None:
    """event_time answers None for bools, non-numbers, unparseable text and huge values."""
    assert event_time({"timestamp": value}) is None


def test_a_text_timestamp_is_read_as_epoch_seconds() -> None:
    """event_time reads a numeric string timestamp as aware UTC."""
    assert event_time({"timestamp": "1700000000.5"}) == datetime(
        2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"message": "x"},
        {"message": {"headers": "x"}},
        {"message": {"headers": {}}},
        {"message": {"headers": {"message-id": "   "}}},
        {"message": {"headers": {"message-id": 42}}},
    ],
)
def test_an_event_without_a_usable_message_id_has_none(event: dict[str, Any]) -> None:
    """event_message_id answers None when the header is absent, blank or not text."""
    assert event_message_id(event) is None


# --- Mailgun events: folding events per recipient -----------------------------------------------

REF = BatchRef(campaign_id=7, attempt_id=3, batch_id=11)
ANN = BatchRecipient(id=1, email="Ann@Example.com")


def _event(kind: str, at: float | None, message_id: str, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": kind,
        "recipient": "ann@example.com",
        "user-variables": {
            events.CAMPAIGN_VAR: "7",
            events.BATCH_VAR: "11",
            events.RECIPIENT_VAR: "1",
        },
        "message": {"headers": {"message-id": f"<{message_id}>"}},
        **extra,
    }
    if at is not None:
        event["timestamp"] = at
    return event


def test_events_that_do_not_concern_delivery_or_lack_variables_are_ignored() -> None:
    """fold_events skips opened/clicked events and events whose variables are not a mapping."""
    opened = _event("opened", 10.0, "a")
    no_vars = _event("delivered", 10.0, "b")
    no_vars["user-variables"] = "campaign_retry_recipient=1"
    found = fold_events([opened, no_vars], REF, [ANN])
    assert found == {1: RecipientLookup(LookupOutcome.NOT_FOUND)}


def test_a_weaker_event_after_a_stronger_one_does_not_replace_it() -> None:
    """Once delivered, a later accepted event for the same recipient leaves delivered in place."""
    found = fold_events([_event("delivered", 20.0, "d"), _event("accepted", 30.0, "a")], REF, [ANN])
    assert found[1].outcome is LookupOutcome.DELIVERED
    assert found[1].message_id == "d"
    assert found[1].at == datetime.fromtimestamp(20.0, UTC)


def test_among_equal_events_the_earliest_wins_whatever_the_page_order() -> None:
    """Two events of equal strength: the earlier one decides; one without a time loses."""
    later, earlier, untimed = (
        _event("accepted", 50.0, "later"),
        _event("accepted", 40.0, "earlier"),
        _event("accepted", None, "untimed"),
    )
    for order in ([later, earlier, untimed], [untimed, earlier, later], [earlier, later]):
        found = fold_events(order, REF, [ANN])
        assert (found[1].message_id, found[1].at) == (
            "earlier",
            datetime.fromtimestamp(40.0, UTC),
        )


def test_a_failed_event_keeps_its_code_and_detail() -> None:
    """A failed event folds into FAILED_PERMANENT with its code and detail text."""
    failed = _event(
        "failed",
        5.0,
        "f",
        severity="permanent",
        reason="bounce",
        **{"delivery-status": {"code": 550, "description": "mailbox\nunknown"}},
    )
    assert fold_events([failed], REF, [ANN])[1] == RecipientLookup(
        LookupOutcome.FAILED_PERMANENT,
        "f",
        datetime.fromtimestamp(5.0, UTC),
        550,
        "bounce: mailbox unknown",
    )


# --- Mailgun events: walking the Events API ------------------------------------------------------

API_KEY = "key-branchsecret123"
WALK: dict[str, Any] = {
    "api_url": "http://127.0.0.1:9",
    "domain": "mg.example.com",
    "auth": ("api", API_KEY),
    "timeout": (0.5, 0.5),
}


class _Response:
    def __init__(self, text: str, status_code: int = 200) -> None:
        self.text = text
        self.status_code = status_code


def _page(items: Any, next_url: str | None = None) -> Callable[[], _Response]:
    body: dict[str, Any] = {"items": items}
    if next_url is not None:
        body["paging"] = {"next": next_url}
    return lambda: _Response(json.dumps(body))


def test_a_page_without_a_next_link_ends_the_walk() -> None:
    """walk_events yields the first page's events and stops when there is no paging link."""
    got = list(walk_events(_page([{"event": "accepted"}, "junk", {"event": "delivered"}]), **WALK))
    assert got == [{"event": "accepted"}, {"event": "delivered"}]


def test_the_walk_gives_up_after_max_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """After MAX_PAGES pages the lookup stops as a transient failure, without fetching more."""
    monkeypatch.setattr(events, "MAX_PAGES", 1)

    def no_fetch(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a page beyond MAX_PAGES was fetched")

    monkeypatch.setattr(events.requests, "get", no_fetch)
    nxt = "http://127.0.0.1:9/v3/mg.example.com/events/token2"
    walk = walk_events(_page([{"event": "accepted"}], nxt), **WALK)
    assert next(walk) == {"event": "accepted"}
    with pytest.raises(ProviderError) as caught:
        next(walk)
    assert caught.value.kind is FailureKind.TRANSIENT
    assert caught.value.message == "Mailgun Events API lookup stopped after 1 pages."


@pytest.mark.parametrize("text", ["<html>502</html>", '{"items": "none"}', "[1, 2]"])
def test_an_answer_without_an_items_list_is_a_transient_lookup_failure(text: str) -> None:
    """A 200 whose body is not JSON with an items list makes the lookup fail as transient."""
    with pytest.raises(ProviderError) as caught:
        list(walk_events(lambda: _Response(text), **WALK))
    assert caught.value.kind is FailureKind.TRANSIENT
    assert caught.value.code is None
    assert caught.value.message == (
        "Mailgun Events API lookup failed: the answer has no 'items' list"
    )


def test_a_network_error_is_a_transient_failure_without_the_key() -> None:
    """Any exception while fetching becomes a transient ProviderError with the key redacted."""

    def broken() -> Any:
        raise requests.ConnectionError(f"cannot reach https://api:{API_KEY}@127.0.0.1/")

    with pytest.raises(ProviderError) as caught:
        list(walk_events(broken, **WALK))
    assert caught.value.kind is FailureKind.TRANSIENT
    assert caught.value.message.startswith("Mailgun Events API lookup failed: ConnectionError: ")
    assert API_KEY not in caught.value.message
    assert "[REDACTED]" in caught.value.message
    assert caught.value.__cause__ is None


# --- web.lookup: hosts with other campaign key types ---------------------------------------------
# The mixin's ``cloned_from_id`` takes the campaign key's type, so these hosts work on
# PostgreSQL too; most are built on SQLite here for speed.


class _NoPythonType(sa.types.UserDefinedType[Any]):
    """A third-party key type that declares no Python type the SQLAlchemy 2.0 way (raising)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "VARCHAR(40)"

    @property
    def python_type(self) -> type:
        raise NotImplementedError


class _Undeclared(sa.types.UserDefinedType[Any]):
    """A key type that declares no Python type at all (SQLAlchemy 2.1 then answers object)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "VARCHAR(40)"


class _WholeNumber(sa.types.UserDefinedType[int]):
    """An integer key type SQLAlchemy does not know as an Integer."""

    cache_ok = True

    @property
    def python_type(self) -> type:
        return int

    def get_col_spec(self, **kw: Any) -> str:
        return "BIGINT"


KeyedHost = Callable[[Any, str], tuple[Flask, Any, SQLAlchemy]]


@pytest.fixture
def keyed_host(redis_url: str) -> Iterator[KeyedHost]:
    """Build a host app on ``url`` whose campaign key column has the given type, tables made."""
    built: list[tuple[Flask, SQLAlchemy]] = []

    def build(key_type: Any, url: str) -> tuple[Flask, Any, SQLAlchemy]:
        db = SQLAlchemy()
        retry = CampaignRetry()

        class KeyedCampaign(CampaignMixin, db.Model):  # type: ignore[name-defined,misc]
            __tablename__ = "keyed_campaign"
            id = db.Column(key_type, primary_key=True)

        retry.recipients_loader(lambda campaign: [])
        retry.message_builder(lambda campaign: {"subject": "s", "text": "t", "from": "a@b.c"})
        app = Flask(f"keyed{len(built)}")
        app.config.update(
            SQLALCHEMY_DATABASE_URI=url,
            CAMPAIGN_RETRY_PROVIDER="sandbox",
            CAMPAIGN_RETRY_REDIS_URL=redis_url,
            CAMPAIGN_RETRY_QUEUE=f"keyed-{uuid.uuid4().hex[:12]}",
            SECRET_KEY="test",
        )
        db.init_app(app)
        retry.init_app(app, db=db, campaign_model=KeyedCampaign)
        built.append((app, db))
        with app.app_context():
            db.drop_all()
            db.create_all()
        return app, KeyedCampaign, db

    yield build
    for app, db in built:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'keyed.db'}"


def _status(app: Flask, raw: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["campaign-retry", "status", raw])
    return result.exit_code, result.output


def test_a_uuid_keyed_host_finds_campaigns_by_uuid_and_refuses_other_text(
    keyed_host: KeyedHost, sqlite_url: str
) -> None:
    """With a UUID key, a UUID finds the campaign; anything else is "campaign ids are UUIDs"."""
    app, model, db = keyed_host(sa.Uuid, sqlite_url)
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    with app.app_context():
        db.session.add(model(id=key))
        db.session.commit()
        state = get_state()
        assert load_campaign(state, str(key)).id == key
        assert load_campaign(state, "12345678123456781234567812345678").id == key
        assert load_campaign(state, "00000000-0000-0000-0000-000000000001") is None
        assert load_campaign(state, "42") is None
        assert id_problem(state, str(key)) is None
        assert id_problem(state, "not-a-uuid") == "campaign ids are UUIDs"
    code, output = _status(app, "not-a-uuid")
    assert (code, output) == (
        1,
        "Error: There is no campaign with id 'not-a-uuid': campaign ids are UUIDs.\n",
    )
    code, output = _status(app, str(key))
    assert code == 0
    assert output.startswith(f"Campaign {key}: DRAFT\n")


def test_a_text_keyed_host_accepts_printable_ids_up_to_255_characters(
    keyed_host: KeyedHost, sqlite_url: str
) -> None:
    """With a string key, printable ids of 1-255 characters are looked up; others never are."""
    app, model, db = keyed_host(sa.String(255), sqlite_url)
    with app.app_context():
        db.session.add_all([model(id="spring-2026"), model(id="x" * 255)])
        db.session.commit()
        state = get_state()
        assert load_campaign(state, "spring-2026").id == "spring-2026"
        assert load_campaign(state, "x" * 255).id == "x" * 255
        assert load_campaign(state, "summer") is None
        for bad in ("", "x" * 256, "a\x00b", "tab\there"):
            assert load_campaign(state, bad) is None, repr(bad)
            assert id_problem(state, bad) == "campaign ids are 1 to 255 printable characters"
        assert id_problem(state, "summer") is None  # well-formed: simply not there
    code, output = _status(app, "x" * 256)
    assert code == 1
    assert output == (
        f"Error: There is no campaign with id {'x' * 40!r}: "
        "campaign ids are 1 to 255 printable characters.\n"
    )
    assert _status(app, "summer") == (1, "Error: There is no campaign with id 'summer'.\n")


def test_a_key_type_whose_python_type_raises_is_treated_as_text(
    keyed_host: KeyedHost, sqlite_url: str
) -> None:
    """A custom key type whose python_type raises NotImplementedError is looked up as text."""
    app, model, db = keyed_host(_NoPythonType(), sqlite_url)
    with app.app_context():
        db.session.add(model(id="abc"))
        db.session.commit()
        state = get_state()
        assert load_campaign(state, "abc").id == "abc"
        assert load_campaign(state, "a" * 256) is None
        assert id_problem(state, "") == "campaign ids are 1 to 255 printable characters"


def test_a_key_type_that_declares_no_python_type_is_treated_as_text(
    keyed_host: KeyedHost, sqlite_url: str
) -> None:
    """A key type with no declared Python type is looked up as text, as the fallback intends."""
    app, model, db = keyed_host(_Undeclared(), sqlite_url)
    with app.app_context():
        db.session.add(model(id="abc"))
        db.session.commit()
        assert id_problem(get_state(), "abc") is None
        assert load_campaign(get_state(), "abc").id == "abc"


def test_an_integer_key_of_a_type_sqlalchemy_does_not_know_allows_64_bit_ids(
    keyed_host: KeyedHost, database_url: str
) -> None:
    """An int key type outside the known Integer types holds ids up to 2**63 - 1 on any DB."""
    app, model, db = keyed_host(_WholeNumber(), database_url)
    with app.app_context():
        db.session.add(model(id=2**40))
        db.session.commit()
        state = get_state()
        assert max_integer_id(state) == 2**63 - 1
        assert load_campaign(state, str(2**40)).id == 2**40
        assert load_campaign(state, str(2**63)) is None
        assert id_problem(state, "0") == (
            "campaign ids are whole numbers from 1 to 9223372036854775807"
        )


def test_a_key_that_is_neither_number_uuid_nor_text_names_no_campaign(
    keyed_host: KeyedHost, sqlite_url: str
) -> None:
    """With a date key, no raw id can name a campaign, even the text of an existing key."""
    app, model, db = keyed_host(sa.Date, sqlite_url)
    with app.app_context():
        db.session.add(model(id=date(2026, 1, 2)))
        db.session.commit()
        state = get_state()
        assert load_campaign(state, "2026-01-02") is None
        assert id_problem(state, "2026-01-02") is not None


@pytest.mark.parametrize(
    ("key_type", "key", "clone_key"),
    [
        (sa.Uuid, uuid.UUID(int=7), uuid.UUID(int=8)),
        (sa.String(40), "spring-sale", "spring-sale-copy"),
        (sa.BigInteger, 2**40, 2**40 + 1),
    ],
)
def test_a_campaign_table_of_any_key_type_is_created_and_cloned_from_on_postgresql(
    keyed_host: KeyedHost, postgres_url: str, key_type: Any, key: Any, clone_key: Any
) -> None:
    """cloned_from_id takes the key's type: PostgreSQL accepts the foreign key (it refused an
    INTEGER one to a UUID or text key) and a clone row points at its original."""
    app, model, db = keyed_host(key_type, postgres_url)
    column = model.__table__.c.cloned_from_id
    assert type(column.type) is type(model.__table__.c.id.type)
    with app.app_context():
        db.session.add(model(id=key))
        db.session.commit()
        db.session.add(model(id=clone_key, cloned_from_id=key))
        db.session.commit()
        assert load_campaign(get_state(), str(key)).id == key
        assert load_campaign(get_state(), str(clone_key)).cloned_from_id == key


# --- alerts.targets: URL checks and address policy -----------------------------------------------


@pytest.mark.parametrize("url", ["http://[::1/hook", "https://hooks.example.com:99999/x?t=1"])
def test_an_unparseable_url_is_redacted_to_a_placeholder(url: str) -> None:
    """redact_url never raises: a URL urlsplit cannot parse becomes "<unparseable URL>"."""
    assert redact_url(url) == "<unparseable URL>"


def test_an_out_of_range_port_is_a_configuration_error() -> None:
    """validate_webhook_url refuses a URL whose port cannot be parsed, naming the key."""
    with pytest.raises(ConfigurationError) as caught:
        validate_webhook_url("https://hooks.example.com:99999/x", key="MY_KEY")
    assert str(caught.value).startswith("MY_KEY holds an invalid URL (")
    assert "Port out of range" in str(caught.value)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:0a00:0001::", "private address (embedded in 2002:a00:1::)"),
        (
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "private address (embedded in 2001:0:4136:e378:8000:63bf:3fff:fdd2)",
        ),
        ("64:ff9b::a9fe:a9fe", "cloud metadata address (embedded in 64:ff9b::a9fe:a9fe)"),
        ("64:ff9b::a00:1", "private address (embedded in 64:ff9b::a00:1)"),
        ("64:ff9b::808:808", None),
        ("2002:0808:0808::1", None),
    ],
)
def test_ipv4_inside_6to4_teredo_and_nat64_is_judged(address: str, reason: str | None) -> None:
    """IPv6 addresses carrying an IPv4 (6to4, Teredo, NAT64) are judged by that IPv4."""
    assert refusal_reason(ipaddress.ip_address(address), allow_private=False) == reason


def test_metadata_behind_nat64_stays_refused_when_private_is_allowed() -> None:
    """allow_private does not open cloud metadata reached through NAT64."""
    assert refusal_reason(ipaddress.ip_address("64:ff9b::a9fe:a9fe"), allow_private=True) == (
        "cloud metadata address (embedded in 64:ff9b::a9fe:a9fe)"
    )
    assert refusal_reason(ipaddress.ip_address("64:ff9b::a00:1"), allow_private=True) is None


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answer: list[str] | Exception) -> list[str]:
    """Make every lookup answer ``answer`` (addresses, or an exception); returns the names asked."""
    asked: list[str] = []

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if isinstance(answer, Exception):
            raise answer
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answer
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return asked


def test_repeated_and_scoped_answers_are_listed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """safe_addresses drops duplicate DNS answers and the %scope of an IPv6 answer."""
    _fake_dns(monkeypatch, ["93.184.216.34", "93.184.216.34", "fe80::1%eth0", "fe80::1"])
    assert safe_addresses("hooks.example.test", 443, allow_private=True) == [
        "93.184.216.34",
        "fe80::1",
    ]


def test_a_name_that_resolves_to_nothing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty DNS answer is a refusal, not an empty list of addresses."""
    asked = _fake_dns(monkeypatch, [])
    with pytest.raises(TargetRefused) as caught:
        check_target("https://empty.example.test/hook", allow_private=True)
    assert (caught.value.host, caught.value.reason) == (
        "empty.example.test",
        "the name resolves to no address",
    )
    assert asked == ["empty.example.test"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://files.example.com/hook", "ftp://files.example.com"),
        ("http:///no-host", "http://?"),
    ],
)
def test_check_target_refuses_non_http_urls_without_resolving(
    url: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check_target refuses a non-http(s) or hostless URL before any DNS lookup."""
    asked = _fake_dns(monkeypatch, ["93.184.216.34"])
    with pytest.raises(TargetRefused) as caught:
        check_target(url, allow_private=True)
    assert str(caught.value) == f"{shown}: not an http(s) URL with a host"
    assert asked == []


# --- alerts.targets: the pinned connection -------------------------------------------------------


def test_a_dns_failure_at_connect_is_a_name_resolution_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed lookup while connecting surfaces as requests' ConnectionError (retryable)."""
    _fake_dns(monkeypatch, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    with (
        guarded_session(allow_private=False) as session,
        pytest.raises(requests.ConnectionError) as caught,
    ):
        session.post("http://gone.example.test/hook", data=b"{}", allow_redirects=False)
    assert isinstance(caught.value.args[0].reason, NameResolutionError)
    assert "gone.example.test" in str(caught.value)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_refused_connection_is_a_new_connection_error() -> None:
    """When every checked address refuses the connection, the error says it could not connect."""
    port = _closed_port()
    with (
        guarded_session(allow_private=True) as session,
        pytest.raises(requests.ConnectionError) as caught,
    ):
        session.post(f"http://127.0.0.1:{port}/hook", data=b"{}", allow_redirects=False)
    reason = caught.value.args[0].reason
    assert isinstance(reason, NewConnectionError)
    assert "Failed to establish a new connection" in str(reason)


def test_a_connect_timeout_on_every_address_is_a_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When connecting times out, requests raises ConnectTimeout naming the host."""
    tried: list[tuple[str, int]] = []

    def timing_out(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        tried.append(address)
        raise TimeoutError("timed out")

    monkeypatch.setattr(targets, "create_connection", timing_out)
    _fake_dns(monkeypatch, ["127.0.0.7", "127.0.0.8"])
    with (
        guarded_session(allow_private=True) as session,
        pytest.raises(requests.ConnectTimeout) as caught,
    ):
        session.post("http://slow.example.test:8123/hook", data=b"{}", timeout=(0.2, 0.2))
    assert tried == [("127.0.0.7", 8123), ("127.0.0.8", 8123)]
    reason = caught.value.args[0].reason
    assert isinstance(reason, ConnectTimeoutError)
    assert "Connection to slow.example.test timed out. (connect timeout=0.2)" in str(reason)


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook_port() -> Iterator[int]:
    """A receiver on 127.0.0.1 only, answering 204 to every POST."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_an_address_that_refuses_is_skipped_for_the_next_checked_one(
    monkeypatch: pytest.MonkeyPatch, hook_port: int
) -> None:
    """If the first resolved address refuses, the connection goes to the next one."""
    _fake_dns(monkeypatch, ["127.0.0.2", "127.0.0.1"])  # the receiver listens on .1 only
    with guarded_session(allow_private=True) as session:
        response = session.post(
            f"http://two.example.test:{hook_port}/hook", data=b"{}", allow_redirects=False
        )
    assert response.status_code == 204


def test_an_https_connection_applies_the_policy_at_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The HTTPS connection of a guarded session refuses a loopback target itself."""
    asked = _fake_dns(monkeypatch, ["127.0.0.1"])
    with guarded_session(allow_private=False) as session, pytest.raises(TargetRefused) as caught:
        session.post("https://loop.example.test/hook", data=b"{}", allow_redirects=False)
    assert str(caught.value) == "loop.example.test: resolves to 127.0.0.1, a loopback address"
    assert asked == ["loop.example.test"]
