"""MailgunProvider against the fake Mailgun server, through the real SDK."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3.util.connection
from mailgun.client import Client
from mailgun.config import RetryPolicy

from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    Provider,
    ProviderError,
)
from flask_campaign_retry.providers.mailgun.provider import EU_API_URL, MailgunProvider
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.statuses import FailureKind
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun

REF = BatchRef(campaign_id=42, attempt_id=3, batch_id=17)
MESSAGE = OutgoingMessage(
    subject="Hello %recipient.name%",
    from_address="News <news@example.com>",
    html="<p>Hi %recipient.name%</p>",
    text="Hi %recipient.name%",
    reply_to="support@example.com",
    headers={"X-Campaign": "spring", "Reply-To": "ignored@example.com"},
    tags=("newsletter", "campaign-retry"),
)
RECIPIENTS = [
    BatchRecipient(101, "ann@example.org", {"name": "Ann"}),
    BatchRecipient(102, "bob@example.org", {"name": "Bob", "plan": 3}),
    BatchRecipient(103, "cy@example.org"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeMailgun]:
    with FakeMailgun(domain="mg.example.com") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeMailgun) -> FakeMailgun:
    server.reset()
    return server


def config_for(fake: FakeMailgun, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "MAILGUN_API_KEY": fake.api_key,
        "MAILGUN_DOMAIN": fake.domain,
        "MAILGUN_API_URL": fake.url,
        "CAMPAIGN_RETRY_CONNECT_TIMEOUT": 0.5,
        "CAMPAIGN_RETRY_READ_TIMEOUT": 0.5,
    }
    config.update(overrides)
    return config


@pytest.fixture
def provider(fake: FakeMailgun) -> Iterator[MailgunProvider]:
    with MailgunProvider.from_config(config_for(fake)) as built:
        yield built


def send_error(provider: MailgunProvider) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.send_batch(MESSAGE, RECIPIENTS, REF)
    return caught.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- configuration ---------------------------------------------------------------------------


def test_is_a_provider(provider: MailgunProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "mailgun"


@pytest.mark.parametrize("missing", ["MAILGUN_API_KEY", "MAILGUN_DOMAIN"])
def test_missing_required_settings_say_how_to_fix(fake: FakeMailgun, missing: str) -> None:
    config = config_for(fake)
    del config[missing]
    with pytest.raises(ConfigurationError, match=f"{missing} is not set: set it to"):
        MailgunProvider.from_config(config)
    with pytest.raises(ConfigurationError, match=missing):
        MailgunProvider.from_config({**config, missing: "  "})


def test_defaults() -> None:
    built = MailgunProvider.from_config({"MAILGUN_API_KEY": "k", "MAILGUN_DOMAIN": "mg.x.org"})
    assert built.api_url == "https://api.mailgun.net"
    assert (built.connect_timeout, built.read_timeout) == (5.0, 30.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://api.eu.mailgun.net", EU_API_URL),
        ("https://api.eu.mailgun.net/v3", EU_API_URL),
        ("https://api.mailgun.net/v3/", "https://api.mailgun.net"),
        (" https://api.mailgun.net/ ", "https://api.mailgun.net"),
    ],
)
def test_api_url_is_normalized(raw: str, expected: str) -> None:
    config = {"MAILGUN_API_KEY": "k", "MAILGUN_DOMAIN": "d.org", "MAILGUN_API_URL": raw}
    assert MailgunProvider.from_config(config).api_url == expected


@pytest.mark.parametrize(
    "raw", ["http://api.mailgun.net", "api.mailgun.net", "ftp://x.org", "https://api:k@x.org"]
)
def test_bad_api_urls_are_configuration_errors(raw: str) -> None:
    config = {"MAILGUN_API_KEY": "k", "MAILGUN_DOMAIN": "d.org", "MAILGUN_API_URL": raw}
    with pytest.raises(ConfigurationError, match="MAILGUN_API_URL"):
        MailgunProvider.from_config(config)


@pytest.mark.parametrize("value", [0, -1, 301, "5", True])
def test_bad_timeouts_are_configuration_errors(fake: FakeMailgun, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="CAMPAIGN_RETRY_READ_TIMEOUT"):
        MailgunProvider.from_config(config_for(fake, CAMPAIGN_RETRY_READ_TIMEOUT=value))


# -- the form --------------------------------------------------------------------------------


def test_form_fields_are_exactly_what_mailgun_takes(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    accepted = provider.send_batch(MESSAGE, RECIPIENTS, REF)
    (call,) = fake.calls
    assert call.form == {
        "from": ("News <news@example.com>",),
        "to": ("ann@example.org", "bob@example.org", "cy@example.org"),
        "subject": ("Hello %recipient.name%",),
        "html": ("<p>Hi %recipient.name%</p>",),
        "text": ("Hi %recipient.name%",),
        "h:X-Campaign": ("spring",),
        "h:Reply-To": ("support@example.com",),
        "o:tag": ("newsletter", "campaign-retry"),
        "recipient-variables": call.form["recipient-variables"],
        "v:campaign_retry_campaign": ("42",),
        "v:campaign_retry_attempt": ("3",),
        "v:campaign_retry_batch": ("17",),
        "v:campaign_retry_recipient": ("%recipient.campaign_retry_rid%",),
    }
    assert json.loads(call.form["recipient-variables"][0]) == {
        "ann@example.org": {"name": "Ann", "campaign_retry_rid": 101},
        "bob@example.org": {"name": "Bob", "plan": 3, "campaign_retry_rid": 102},
        "cy@example.org": {"campaign_retry_rid": 103},
    }
    assert accepted == Accepted(message_id=call.message_id, http_status=200)
    assert accepted.message_id is not None and "<" not in accepted.message_id


def test_events_would_map_back_to_campaign_batch_and_recipient(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    provider.send_batch(MESSAGE, RECIPIENTS, REF)
    by_email = {item.email: item.user_variables for item in fake.accepted}
    assert by_email["bob@example.org"] == {
        "campaign_retry_campaign": "42",
        "campaign_retry_attempt": "3",
        "campaign_retry_batch": "17",
        "campaign_retry_recipient": "102",
    }
    assert by_email["cy@example.org"]["campaign_retry_recipient"] == "103"


def test_recipient_variables_are_sent_even_without_template_variables(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    plain = OutgoingMessage(subject="s", from_address="a@example.com", text="t")
    provider.send_batch(plain, [BatchRecipient(1, "a@example.org")], REF)
    assert fake.calls[0].recipient_variables == {"a@example.org": {"campaign_retry_rid": 1}}
    assert "o:tag" not in fake.calls[0].form and "html" not in fake.calls[0].form


def test_more_than_three_tags_is_refused_before_sending(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    message = OutgoingMessage(subject="s", from_address="a@x.org", text="t", tags=tuple("abcd"))
    with pytest.raises(ValueError, match="Mailgun allows at most 3 o:tag"):
        provider.send_batch(message, RECIPIENTS, REF)
    assert fake.request_count == 0


def test_a_repeated_address_is_refused_before_sending(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    twice = [BatchRecipient(1, "a@example.org"), BatchRecipient(2, "a@example.org")]
    with pytest.raises(ValueError, match="appears twice"):
        provider.send_batch(MESSAGE, twice, REF)
    assert fake.request_count == 0


def test_header_with_line_break_is_refused(provider: MailgunProvider) -> None:
    message = OutgoingMessage(
        subject="s", from_address="a@x.org", text="t", headers={"X-A": "1\r\nBcc: x@y.org"}
    )
    with pytest.raises(ValueError, match="line break"):
        provider.send_batch(message, RECIPIENTS, REF)


# -- exactly one HTTP request per batch ------------------------------------------------------


@pytest.mark.parametrize("status", [429, 420, 500, 502, 503, 504])
def test_one_http_request_per_batch_on_retryable_statuses(
    fake: FakeMailgun, provider: MailgunProvider, status: int
) -> None:
    fake.add_fault(FaultRule(status=status))
    error = send_error(provider)
    assert error.code == status
    assert fake.request_count == 1


def test_the_count_would_see_sdk_retries(fake: FakeMailgun) -> None:
    """Control: with any SDK retry left on, the fake counts more than one request."""
    fake.add_fault(FaultRule(status=503))
    client = Client(
        auth=("api", fake.api_key),
        api_url=fake.url,
        timeout=(0.5, 0.5),
        retry_policy=RetryPolicy(max_retries=1, base_delay=0.001, max_delay=0.001),
    )
    with client:
        response = client.messages.create(domain=fake.domain, data={"to": "a@example.org"})
    assert response.status_code == 503
    assert fake.request_count == 2


def test_one_request_on_read_timeout_which_is_uncertain(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    fake.add_fault(FaultRule(hang=2.0))
    started = time.perf_counter()
    error = send_error(provider)
    assert time.perf_counter() - started < 1.5
    assert error.kind is FailureKind.UNCERTAIN
    assert "read timeout" in error.message
    assert fake.request_count == 1
    assert fake.accepted == ()


def test_accepted_then_timed_out_is_uncertain_and_was_sent(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    fake.add_fault(FaultRule(accept_then_hang=True, hang=2.0))
    assert send_error(provider).kind is FailureKind.UNCERTAIN
    assert fake.accepted_count("ann@example.org") == 1
    assert fake.request_count == 1


@pytest.fixture
def connection_attempts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Counts urllib3's TCP connection attempts (the SDK's only way out)."""
    attempts: list[tuple[str, int]] = []
    real: Callable[..., socket.socket] = urllib3.util.connection.create_connection

    def counting(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    return attempts


def test_connection_refused_is_one_attempt_and_transient(
    fake: FakeMailgun, connection_attempts: list[tuple[str, int]]
) -> None:
    port = free_port()
    config = config_for(fake, MAILGUN_API_URL=f"http://127.0.0.1:{port}")
    with MailgunProvider.from_config(config) as refused:
        error = send_error(refused)
    assert error.kind is FailureKind.TRANSIENT
    assert "nothing was sent" in error.message
    assert connection_attempts == [("127.0.0.1", port)]


@pytest.fixture
def dropping_server() -> Iterator[tuple[str, list[int]]]:
    """A server that reads the whole request, then closes the socket without answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()


def test_connection_closed_after_sending_is_uncertain(
    fake: FakeMailgun, dropping_server: tuple[str, list[int]]
) -> None:
    url, connections = dropping_server
    with MailgunProvider.from_config(config_for(fake, MAILGUN_API_URL=url)) as dropped:
        error = send_error(dropped)
    assert error.kind is FailureKind.UNCERTAIN
    assert "connection to Mailgun broke" in error.message
    assert connections == [1]


# -- classification end to end ---------------------------------------------------------------


def test_rate_limit_resume_time_comes_from_the_body(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    fake.add_fault(FaultRule(status=429, resume_in=90))
    before = datetime.now(UTC)
    error = send_error(provider)
    assert error.kind is FailureKind.TRANSIENT
    assert error.resume_at is not None
    assert before + timedelta(seconds=88) <= error.resume_at <= before + timedelta(seconds=92)


def test_a_later_retry_after_header_wins(fake: FakeMailgun, provider: MailgunProvider) -> None:
    fake.add_fault(FaultRule(status=420, resume_in=5, retry_after=600))
    before = datetime.now(UTC)
    error = send_error(provider)
    assert error.resume_at is not None
    assert error.resume_at >= before + timedelta(seconds=598)


def test_wrong_key_is_fatal(fake: FakeMailgun) -> None:
    with MailgunProvider.from_config(config_for(fake, MAILGUN_API_KEY="nope")) as wrong:
        error = send_error(wrong)
    assert (error.kind, error.code) == (FailureKind.FATAL, 401)
    assert "MAILGUN_API_KEY" in error.message


def test_wrong_domain_is_permanent_with_a_hint(fake: FakeMailgun) -> None:
    with MailgunProvider.from_config(config_for(fake, MAILGUN_DOMAIN="mg.other.org")) as wrong:
        error = send_error(wrong)
    assert (error.kind, error.code) == (FailureKind.PERMANENT, 404)
    assert "Domain not found: mg.other.org" in error.message


def test_forbidden_is_fatal(fake: FakeMailgun, provider: MailgunProvider) -> None:
    fake.add_fault(FaultRule(status=403))
    error = send_error(provider)
    assert error.kind is FailureKind.FATAL
    assert "not allowed to send large batches yet" in error.message


def test_an_invalid_address_blames_recipients(provider: MailgunProvider) -> None:
    recipients = [*RECIPIENTS, BatchRecipient(104, "not-an-address")]
    with pytest.raises(ProviderError) as caught:
        provider.send_batch(MESSAGE, recipients, REF)
    assert (caught.value.kind, caught.value.code) == (FailureKind.PERMANENT, 400)
    assert caught.value.blames_recipients


def test_server_errors_are_transient(fake: FakeMailgun, provider: MailgunProvider) -> None:
    fake.add_fault(FaultRule(status=500, message="Internal error, please retry"))
    error = send_error(provider)
    assert error.kind is FailureKind.TRANSIENT
    assert error.message == "HTTP 500 from Mailgun: Internal error, please retry"


# -- secrets -----------------------------------------------------------------------------------


def secret_forms(key: str) -> list[str]:
    return [key, base64.b64encode(f"api:{key}".encode()).decode()]


def test_the_key_never_appears_in_errors_reprs_or_logs(
    fake: FakeMailgun,
    dropping_server: tuple[str, list[int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mailgun")
    caplog.set_level(logging.DEBUG, logger="flask_campaign_retry")
    scenarios: list[tuple[dict[str, Any], FaultRule | None]] = [
        ({}, None),
        ({}, FaultRule(status=500)),
        ({}, FaultRule(status=429, resume_in=1)),
        ({}, FaultRule(hang=2.0)),
        ({"MAILGUN_API_URL": f"http://127.0.0.1:{free_port()}"}, None),
        ({"MAILGUN_API_URL": dropping_server[0]}, None),
    ]
    texts: list[str] = []
    for overrides, rule in scenarios:
        fake.clear_faults()
        if rule is not None:
            fake.add_fault(rule)
        built = MailgunProvider.from_config(config_for(fake, **overrides))
        texts += [repr(built), str(built)]
        try:
            built.send_batch(MESSAGE, RECIPIENTS, REF)
        except ProviderError as error:
            texts += [str(error), repr(error), error.message]
        finally:
            built.close()
    # a refused key, whose value differs from the fake's
    wrong_key = "ffffffffffffffffffffffffffffffff-00000000-11111111"
    with MailgunProvider.from_config(config_for(fake, MAILGUN_API_KEY=wrong_key)) as wrong:
        texts += [repr(send_error(wrong)), repr(wrong)]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts += [formatter.format(record) for record in caplog.records]
    assert any(r.name.startswith("mailgun") for r in caplog.records), "SDK logs were captured"
    assert any(r.levelno >= logging.ERROR for r in caplog.records), "including its errors"
    everything = "\n".join(texts)
    for secret in secret_forms(fake.api_key) + secret_forms(wrong_key):
        assert secret not in everything


def test_provider_refuses_to_be_pickled(provider: MailgunProvider) -> None:
    with pytest.raises(TypeError, match="must not be pickled"):
        pickle.dumps(provider)


# -- lifecycle -------------------------------------------------------------------------------


def test_close_is_idempotent_and_a_later_send_reconnects(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    provider.send_batch(MESSAGE, RECIPIENTS, REF)
    provider.close()
    provider.close()
    provider.send_batch(MESSAGE, RECIPIENTS, REF)
    assert fake.accepted_count("ann@example.org") == 2
