"""Classification of Mailgun answers and SDK exceptions, and resume-time parsing."""

from __future__ import annotations

import base64
import http.client
import json
import socket
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from mailgun.endpoints import BaseEndpoint
from mailgun.handlers.error_handler import ApiError
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from flask_campaign_retry.providers.base import ProviderError
from flask_campaign_retry.providers.mailgun.errors import (
    MAX_MESSAGE_CHARS,
    REDACTED,
    classify_response,
    mailgun_message,
    parse_resume_time,
    redact,
)
from flask_campaign_retry.providers.mailgun.exceptions import classify_exception
from flask_campaign_retry.statuses import FailureKind

NOW = datetime(2026, 11, 29, 9, 15, tzinfo=UTC)
URL = "https://api.mailgun.net/v3/mg.example.com/messages"
KEY = "0123456789abcdef0123456789abcdef-0a1b2c3d-4e5f6a7b"


def body(message: str) -> str:
    return json.dumps({"message": message})


# -- classify_response ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (429, body("Domain d is not allowed to send: request limit exceeded"), "transient"),
        (420, body("Domain d is not allowed to send: recipient limit exceeded"), "transient"),
        (408, body("Request Timeout"), "transient"),
        (500, body("Internal Server Error"), "transient"),
        (501, "Not Implemented", "transient"),
        (503, body("Service Unavailable"), "transient"),
        (599, "", "transient"),
        (502, "<html>Bad Gateway</html>", "uncertain"),
        (504, "<html>Gateway Time-out</html>", "uncertain"),
        (400, body("'from' parameter is missing"), "permanent"),
        (404, body("Domain not found: mg.example.com"), "permanent"),
        (413, "Request Entity Too Large", "permanent"),
        (422, body("Unprocessable"), "permanent"),
        (401, "Forbidden", "fatal"),
        (403, body("Domain mg.example.com is not allowed to send large batches yet"), "fatal"),
        (301, "", "fatal"),
        (600, "", "uncertain"),
    ],
)
def test_every_status_class_gets_its_kind_and_code(status: int, text: str, kind: str) -> None:
    error = classify_response(status, text, {}, NOW)
    assert error.kind == FailureKind(kind)
    assert error.code == status
    assert error.message.startswith(f"HTTP {status} from Mailgun")
    assert not error.blames_recipients


def test_success_statuses_are_not_classified() -> None:
    with pytest.raises(ValueError, match="success"):
        classify_response(200, body("Queued. Thank you."), {}, NOW)


def test_400_naming_an_invalid_to_address_blames_recipients() -> None:
    text = body("'to' parameter is not a valid address. please check documentation")
    error = classify_response(400, text, {}, NOW)
    assert error.kind is FailureKind.PERMANENT
    assert error.blames_recipients
    assert "'to' parameter is not a valid address" in error.message


def test_400_naming_an_invalid_from_address_does_not_blame_recipients() -> None:
    text = body("'from' parameter is not a valid address. please check documentation")
    assert not classify_response(400, text, {}, NOW).blames_recipients


def test_400_domain_not_allowed_to_send_stops_the_campaign() -> None:
    text = body("Domain sandbox1.mailgun.org is not allowed to send: Free accounts are for test")
    error = classify_response(400, text, {}, NOW)
    assert error.kind is FailureKind.FATAL
    assert "Free accounts are for test" in error.message


def test_401_says_the_key_was_refused_and_what_to_check() -> None:
    error = classify_response(401, "Forbidden", {}, NOW)
    assert error.kind is FailureKind.FATAL
    assert "API key was refused" in error.message
    assert "MAILGUN_API_KEY" in error.message
    assert "MAILGUN_API_URL" in error.message


def test_403_includes_mailguns_message() -> None:
    text = body("Domain mg.example.com is not allowed to send large batches yet")
    error = classify_response(403, text, {}, NOW)
    assert "not allowed to send large batches yet" in error.message


def test_404_hints_at_domain_and_region() -> None:
    error = classify_response(404, body("Domain not found: mg.example.com"), {}, NOW)
    assert "Domain not found: mg.example.com" in error.message
    assert "api.eu.mailgun.net" in error.message


def test_rate_limit_carries_the_resume_time() -> None:
    text = body(
        "Domain d is not allowed to send: request limit exceeded, "
        "try again after Sun, 29 Nov 2026 10:00:00 GMT"
    )
    error = classify_response(429, text, {}, NOW)
    assert error.resume_at == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_server_error_without_resume_time_has_none() -> None:
    assert classify_response(503, body("Service Unavailable"), {}, NOW).resume_at is None


def test_message_is_extracted_from_json_and_falls_back_to_text() -> None:
    assert mailgun_message(body("Queued. Thank you.")) == "Queued. Thank you."
    assert mailgun_message("Forbidden") == "Forbidden"
    assert mailgun_message('{"other": 1}') == '{"other": 1}'
    assert mailgun_message("") == "(empty body)"
    assert mailgun_message("  many\n\n  spaces ") == "many spaces"


def test_absurdly_nested_json_is_just_text() -> None:
    error = classify_response(500, "[" * 100_000, {}, NOW)
    assert error.kind is FailureKind.TRANSIENT


def test_long_bodies_are_truncated() -> None:
    error = classify_response(500, "x" * 5000, {}, NOW)
    assert len(error.message) < MAX_MESSAGE_CHARS + 40
    assert error.message.endswith("…")


def test_secrets_echoed_in_a_body_are_redacted() -> None:
    error = classify_response(400, body(f"bad key {KEY}"), {}, NOW, secrets=[KEY])
    assert KEY not in error.message
    assert REDACTED in error.message


# -- parse_resume_time ---------------------------------------------------------------------


def test_resume_time_from_plain_text_body() -> None:
    text = "limit exceeded, try again after Sun, 29 Nov 2026 09:20:00 +0000"
    assert parse_resume_time(text, {}, NOW) == datetime(2026, 11, 29, 9, 20, tzinfo=UTC)


def test_resume_time_with_an_offset_is_converted_to_utc() -> None:
    text = body("try again after Sun, 29 Nov 2026 11:20:00 +0200")
    result = parse_resume_time(text, {}, NOW)
    assert result == datetime(2026, 11, 29, 9, 20, tzinfo=UTC)
    assert result is not None and result.utcoffset() == timedelta(0)


def test_resume_time_with_unknown_zone_is_taken_as_utc() -> None:
    result = parse_resume_time(body("try again after Sun, 29 Nov 2026 09:20:00 -0000"), {}, NOW)
    assert result == datetime(2026, 11, 29, 9, 20, tzinfo=UTC)


def test_resume_time_followed_by_more_text() -> None:
    text = body("try again after Sun, 29 Nov 2026 09:20:00 GMT. Upgrade your plan for more.")
    assert parse_resume_time(text, {}, NOW) == datetime(2026, 11, 29, 9, 20, tzinfo=UTC)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_resume_time("", {"Retry-After": "30"}, NOW) == NOW + timedelta(seconds=30)
    http_date = {"retry-after": "Sun, 29 Nov 2026 09:45:00 GMT"}
    assert parse_resume_time("", http_date, NOW) == datetime(2026, 11, 29, 9, 45, tzinfo=UTC)


def test_when_body_and_header_disagree_the_later_wins() -> None:
    text = body("try again after Sun, 29 Nov 2026 09:20:00 GMT")
    later_header = parse_resume_time(text, {"Retry-After": "3600"}, NOW)
    assert later_header == NOW + timedelta(hours=1)
    later_body = parse_resume_time(text, {"Retry-After": "10"}, NOW)
    assert later_body == datetime(2026, 11, 29, 9, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "headers"),
    [
        ("", {}),
        ("try again after", {}),
        ("try again after tomorrow morning", {}),
        (body("try again after Sun, 99 Nov 2026 99:99:99 GMT"), {}),
        ("", {"Retry-After": "soon"}),
        ("", {"Retry-After": "-5"}),
        ("", {"Retry-After": "9" * 400}),
        ("", {"Retry-After": "Sun, 31 Feb 2026 09:00:00 GMT"}),
        ("[" * 100_000, {}),
    ],
)
def test_garbage_gives_none(text: str, headers: dict[str, str]) -> None:
    assert parse_resume_time(text, headers, NOW) is None


aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9998, 12, 30),
    timezones=st.builds(
        timezone, st.integers(-14 * 60, 14 * 60).map(lambda m: timedelta(minutes=m))
    ),
)


@settings(max_examples=200, deadline=None)
@given(aware_datetimes)
def test_body_resume_time_round_trips(moment: datetime) -> None:
    text = body(f"Domain d is not allowed to send: try again after {format_datetime(moment)}")
    parsed = parse_resume_time(text, {}, NOW)
    assert parsed is not None
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
    assert parsed == moment.replace(microsecond=0)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**9), aware_datetimes)
def test_retry_after_seconds_round_trip(seconds: int, now: datetime) -> None:
    parsed = parse_resume_time("", {"Retry-After": str(seconds)}, now)
    assert parsed == now + timedelta(seconds=seconds)
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@settings(max_examples=300, deadline=None)
@given(
    st.text(),
    st.dictionaries(st.sampled_from(["Retry-After", "retry-after", "X-Other"]), st.text()),
    st.sampled_from(["", "try again after ", body("try again after ")]),
)
def test_arbitrary_input_never_raises_and_is_aware(
    text: str, headers: dict[str, str], prefix: str
) -> None:
    parsed = parse_resume_time(prefix + text, headers, NOW)
    assert parsed is None or parsed.utcoffset() == timedelta(0)


# -- classify_exception --------------------------------------------------------------------


def sdk_wrapped(exc: requests.RequestException) -> ApiError:
    """Wrap ``exc`` with the SDK's own code path, as Endpoint.api_call does."""
    try:
        BaseEndpoint._handle_api_error(exc, "post", URL)
    except ApiError as wrapped:
        return wrapped
    raise AssertionError("the SDK did not wrap the exception")


def retry_error(reason: Exception) -> MaxRetryError:
    return MaxRetryError(None, URL, reason)  # type: ignore[arg-type]


def test_connect_timeout_is_transient() -> None:
    exc = sdk_wrapped(requests.ConnectTimeout(retry_error(ConnectTimeoutError("timed out"))))
    error = classify_exception(exc)
    assert error.kind is FailureKind.TRANSIENT
    assert "nothing was sent" in error.message


def test_dns_failure_is_transient() -> None:
    reason = NameResolutionError("api.mailgun.net", None, socket.gaierror(-2, "Name unknown"))  # type: ignore[arg-type]
    exc = sdk_wrapped(requests.ConnectionError(retry_error(reason)))
    assert classify_exception(exc).kind is FailureKind.TRANSIENT


def test_connection_refused_is_transient() -> None:
    reason = NewConnectionError(None, "Failed to establish a new connection: refused")  # type: ignore[arg-type]
    exc = sdk_wrapped(requests.ConnectionError(retry_error(reason)))
    assert classify_exception(exc).kind is FailureKind.TRANSIENT


def test_tls_handshake_failure_is_transient() -> None:
    exc = sdk_wrapped(requests.exceptions.SSLError(retry_error(SSLError("handshake failed"))))
    assert classify_exception(exc).kind is FailureKind.TRANSIENT


def test_read_timeout_is_uncertain() -> None:
    exc = sdk_wrapped(requests.ReadTimeout(ReadTimeoutError(None, URL, "Read timed out.")))  # type: ignore[arg-type]
    error = classify_exception(exc)
    assert error.kind is FailureKind.UNCERTAIN
    assert "may have been accepted" in error.message


@pytest.mark.parametrize(
    "inner",
    [
        ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed")),
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")),
        ProtocolError("Connection broken", http.client.IncompleteRead(b"abc", 97)),
    ],
)
def test_connection_dropped_after_sending_is_uncertain(inner: Exception) -> None:
    exc = sdk_wrapped(requests.ConnectionError(inner))
    assert classify_exception(exc).kind is FailureKind.UNCERTAIN


def test_evidence_of_sending_wins_over_a_connect_error() -> None:
    outer = requests.ConnectionError(retry_error(NewConnectionError(None, "refused")))  # type: ignore[arg-type]
    outer.__context__ = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    assert classify_exception(sdk_wrapped(outer)).kind is FailureKind.UNCERTAIN


def test_request_the_sdk_refused_to_build_is_permanent() -> None:
    error = classify_exception(ValueError("CRLF injection detected in header: X"))
    assert error.kind is FailureKind.PERMANENT


def test_unknown_errors_are_uncertain() -> None:
    assert classify_exception(RuntimeError("boom")).kind is FailureKind.UNCERTAIN
    assert classify_exception(ApiError("something odd")).kind is FailureKind.UNCERTAIN


def test_a_provider_error_passes_through() -> None:
    original = ProviderError(FailureKind.FATAL, "x")
    assert classify_exception(original) is original


def test_exception_messages_are_redacted() -> None:
    basic = base64.b64encode(f"api:{KEY}".encode()).decode()
    inner = ProtocolError(f"aborted https://api:{KEY}@host Authorization: Basic {basic}")
    error = classify_exception(sdk_wrapped(requests.ConnectionError(inner)), secrets=[KEY])
    assert KEY not in error.message
    assert basic not in error.message
    assert REDACTED in error.message


# -- redact --------------------------------------------------------------------------------


def test_redact_covers_plain_basic_auth_and_url_encoded_forms() -> None:
    secret = "ab/cd+ef=="
    basic = base64.b64encode(f"api:{secret}".encode()).decode()
    text = f"{secret} | {basic} | ab%2Fcd%2Bef%3D%3D"
    assert redact(text, [secret]) == f"{REDACTED} | {REDACTED} | {REDACTED}"


def test_redact_ignores_empty_secrets() -> None:
    assert redact("nothing to hide", ["", None]) == "nothing to hide"
