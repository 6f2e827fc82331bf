"""SandboxProvider: scripted failures identical to what the Mailgun provider would raise."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    Provider,
    ProviderError,
)
from flask_campaign_retry.providers.mailgun.provider import MailgunProvider
from flask_campaign_retry.providers.sandbox.provider import SandboxProvider
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.statuses import FailureKind
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun

REF = BatchRef(campaign_id="c-9", attempt_id=2, batch_id=5)
MESSAGE = OutgoingMessage(subject="Hi", from_address="news@example.com", text="Hello")
RECIPIENTS = [
    BatchRecipient(1, "ann@example.org", {"name": "Ann"}),
    BatchRecipient(2, "bob@blocked.test"),
]


def send_error(provider: Provider, recipients: list[BatchRecipient] = RECIPIENTS) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.send_batch(MESSAGE, recipients, REF)
    return caught.value


def test_accepts_and_records_like_the_fake_server() -> None:
    sandbox = SandboxProvider.from_config({})
    assert isinstance(sandbox, Provider) and sandbox.name == "sandbox"
    result = sandbox.send_batch(MESSAGE, RECIPIENTS, REF)
    assert isinstance(result, Accepted) and result.http_status == 200
    assert result.message_id is not None and "<" not in result.message_id
    ann = next(item for item in sandbox.accepted if item.email == "ann@example.org")
    assert ann.message_id == result.message_id
    assert ann.user_variables == {
        "campaign_retry_campaign": "c-9",
        "campaign_retry_attempt": "2",
        "campaign_retry_batch": "5",
        "campaign_retry_recipient": "1",
    }
    assert ann.recipient_variables == {"name": "Ann", "campaign_retry_rid": 1}
    assert sandbox.accepted_count("BOB@blocked.test") == 1
    assert sandbox.call_count == 1 and sandbox.calls[0].status == 200


def test_mailgun_form_rules_apply() -> None:
    sandbox = SandboxProvider()
    tagged = OutgoingMessage(subject="s", from_address="a@x.org", text="t", tags=tuple("abcd"))
    with pytest.raises(ValueError, match="at most 3"):
        sandbox.send_batch(tagged, RECIPIENTS, REF)
    assert sandbox.call_count == 0


@pytest.fixture(scope="module")
def mailgun() -> Iterator[tuple[FakeMailgun, MailgunProvider]]:
    with FakeMailgun(domain="sandbox.campaign-retry.invalid") as fake:
        config = {
            "MAILGUN_API_KEY": fake.api_key,
            "MAILGUN_DOMAIN": fake.domain,
            "MAILGUN_API_URL": fake.url,
            "CAMPAIGN_RETRY_READ_TIMEOUT": 2.0,
        }
        with MailgunProvider.from_config(config) as provider:
            yield fake, provider


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule(status=400),
        FaultRule(status=400, message="Domain d is not allowed to send: Free accounts only"),
        FaultRule(reject_addresses=True, match="blocked"),
        FaultRule(status=401),
        FaultRule(status=403),
        FaultRule(status=404),
        FaultRule(status=413),
        FaultRule(status=420),
        FaultRule(status=429, retry_after=0),
        FaultRule(status=500, message="Internal"),
        FaultRule(status=502),
        FaultRule(status=503),
        FaultRule(status=504),
    ],
    ids=lambda rule: f"{rule.status}-{rule.message or rule.reject_addresses}",
)
def test_same_error_as_the_mailgun_provider_would_raise(
    mailgun: tuple[FakeMailgun, MailgunProvider], rule: FaultRule
) -> None:
    fake, provider = mailgun
    fake.reset()
    fake.add_fault(rule)
    expected = send_error(provider)
    got = send_error(SandboxProvider([rule]))
    assert (got.kind, got.code, got.blames_recipients, got.message) == (
        expected.kind,
        expected.code,
        expected.blames_recipients,
        expected.message,
    )
    if expected.resume_at is None:
        assert got.resume_at is None
    else:  # "now + Retry-After" is computed on each side a moment apart
        assert got.resume_at is not None
        assert abs(got.resume_at - expected.resume_at) < timedelta(seconds=2)


def test_rate_limit_resume_time_matches_the_rule() -> None:
    sandbox = SandboxProvider([FaultRule(status=429, resume_in=45)])
    before = datetime.now(UTC)
    error = send_error(sandbox)
    assert error.kind is FailureKind.TRANSIENT
    assert error.resume_at is not None
    assert before + timedelta(seconds=43) <= error.resume_at <= before + timedelta(seconds=47)


def test_hang_is_an_immediate_uncertain_read_timeout() -> None:
    sandbox = SandboxProvider([FaultRule(hang=30)])
    started = time.perf_counter()
    error = send_error(sandbox)
    assert time.perf_counter() - started < 1
    assert error.kind is FailureKind.UNCERTAIN and "read timeout" in error.message
    assert sandbox.accepted == ()


def test_accept_then_hang_accepts_and_raises_uncertain() -> None:
    sandbox = SandboxProvider([FaultRule(accept_then_hang=True, hang=30)])
    assert send_error(sandbox).kind is FailureKind.UNCERTAIN
    assert sandbox.accepted_count("ann@example.org") == 1


def test_on_calls_times_and_match() -> None:
    sandbox = SandboxProvider([FaultRule(status=503, on_calls=frozenset({2}))])
    sandbox.add_rule(FaultRule(status=500, match=r"@blocked\.test$", times=1))
    ok = [BatchRecipient(1, "ann@example.org")]
    sandbox.send_batch(MESSAGE, ok, REF)
    assert send_error(sandbox, ok).code == 503
    assert send_error(sandbox).code == 500  # call 3 has a blocked address
    sandbox.send_batch(MESSAGE, RECIPIENTS, REF)  # times=1 is used up
    assert [call.status for call in sandbox.calls] == [200, 503, 500, 200]
    sandbox.clear_rules()
    sandbox.send_batch(MESSAGE, RECIPIENTS, REF)


def test_call_numbers_are_atomic_across_threads() -> None:
    sandbox = SandboxProvider([FaultRule(status=500, on_calls=frozenset({25}))])
    failures: list[ProviderError] = []

    def worker(n: int) -> None:
        for i in range(10):
            try:
                sandbox.send_batch(MESSAGE, [BatchRecipient(i, f"w{n}-{i}@example.org")], REF)
            except ProviderError as error:
                failures.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 1
    assert sorted(call.number for call in sandbox.calls) == list(range(1, 81))
    assert len(sandbox.accepted) == 79


def test_rules_and_latency_from_config() -> None:
    sandbox = SandboxProvider.from_config(
        {
            "CAMPAIGN_RETRY_SANDBOX_RULES": [{"status": 429, "on_calls": [1], "resume_in": 5}],
            "CAMPAIGN_RETRY_SANDBOX_LATENCY": 0.1,
        }
    )
    started = time.perf_counter()
    assert send_error(sandbox).code == 429
    sandbox.send_batch(MESSAGE, RECIPIENTS, REF)
    assert time.perf_counter() - started >= 0.2


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"CAMPAIGN_RETRY_SANDBOX_RULES": [{"status": 500}, {"stauts": 1}]}, r"RULES\[1\].*stauts"),
        ({"CAMPAIGN_RETRY_SANDBOX_RULES": [{"status": 200}]}, r"RULES\[0\].*300-599"),
        ({"CAMPAIGN_RETRY_SANDBOX_RULES": {"status": 500}}, "must be a list"),
        ({"CAMPAIGN_RETRY_SANDBOX_RULES": ["500"]}, r"RULES\[0\].*must be a dict"),
        ({"CAMPAIGN_RETRY_SANDBOX_LATENCY": -1}, "LATENCY"),
        ({"CAMPAIGN_RETRY_SANDBOX_LATENCY": "fast"}, "LATENCY"),
    ],
)
def test_bad_config_is_a_configuration_error(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        SandboxProvider.from_config(config)
