"""Reconciliation: the providers' event lookups (Mailgun's Events API through the SDK against
the fake server, the sandbox's records) and ``reconcile_*`` settling UNCERTAIN recipients on
SQLite and PostgreSQL without sending anything twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.providers.base import (
    BatchRecipient,
    BatchRef,
    LookupOutcome,
    OutgoingMessage,
    ProviderError,
    ReconcilingProvider,
)
from flask_campaign_retry.providers.mailgun import events as mailgun_events
from flask_campaign_retry.providers.mailgun.provider import MailgunProvider
from flask_campaign_retry.providers.sandbox.provider import SandboxProvider
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.reconciliation.reconcile import (
    ABSENT_MESSAGE,
    EVENT_RETENTION,
    reconcile_batches,
    reconcile_due,
    reconcile_uncertain,
)
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import FailureKind
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from tests import hostapp
from tests.helpers import (
    UNCERTAIN_CONFIG,
    batches,
    drain,
    emails,
    recipient_rows,
    reload,
    uncertain_campaign,
)

REF = BatchRef(campaign_id=42, attempt_id=3, batch_id=17)
MESSAGE = OutgoingMessage(subject="Hi", from_address="news@example.com", text="Hi")
SINCE = datetime.now(UTC) - timedelta(minutes=5)


def people(n: int, start: int = 1) -> list[BatchRecipient]:
    return [BatchRecipient(start + i, f"p{start + i}@example.org") for i in range(n)]


@pytest.fixture
def provider(mailgun: FakeMailgun) -> Iterator[MailgunProvider]:
    with MailgunProvider(mailgun.api_key, mailgun.domain, api_url=mailgun.url) as built:
        yield built


# -- the lookups ------------------------------------------------------------------------------


def test_providers_declare_the_lookup(provider: MailgunProvider) -> None:
    assert isinstance(provider, ReconcilingProvider)
    assert isinstance(SandboxProvider(), ReconcilingProvider)


def test_mailgun_lookup_reports_each_recipients_strongest_event(
    mailgun: FakeMailgun, provider: MailgunProvider
) -> None:
    batch = people(4)
    accepted = provider.send_batch(MESSAGE, batch[:3], REF)
    other_batch = BatchRef(campaign_id=42, attempt_id=3, batch_id=18)
    provider.send_batch(MESSAGE, people(1, start=50), other_batch)
    mailgun.events.fail("p1@example.org", severity="temporary", reason="generic", code=452)
    mailgun.events.deliver("p1@example.org")
    mailgun.events.fail("p2@example.org", code=550, description="5.1.1 no such user")

    found = provider.lookup_batch(REF, batch, SINCE)

    assert set(found) == {1, 2, 3, 4}
    assert found[1].outcome is LookupOutcome.DELIVERED
    assert found[1].message_id == accepted.message_id
    assert (found[2].outcome, found[2].code) == (LookupOutcome.FAILED_PERMANENT, 550)
    assert found[2].detail == "bounce: 5.1.1 no such user"
    assert found[3].outcome is LookupOutcome.ACCEPTED
    assert found[3].at is not None and found[3].at.tzinfo is not None
    assert found[4].outcome is LookupOutcome.NOT_FOUND  # never sent in this batch
    assert mailgun.request_count == 2  # the lookup sent nothing


def test_mailgun_lookup_follows_every_page(mailgun: FakeMailgun, provider: MailgunProvider) -> None:
    batch = people(700)
    provider.send_batch(MESSAGE, batch, REF)
    found = provider.lookup_batch(REF, batch, SINCE)
    assert {item.outcome for item in found.values()} == {LookupOutcome.ACCEPTED}
    assert mailgun.events.request_count == 4  # 300 + 300 + 100, then the empty page


def test_mailgun_lookup_failure_raises_without_the_key(
    mailgun: FakeMailgun, provider: MailgunProvider
) -> None:
    provider.send_batch(MESSAGE, people(2), REF)
    mailgun.events.break_api(500, times=1)
    with pytest.raises(ProviderError) as caught:
        provider.lookup_batch(REF, people(2), SINCE)
    assert (caught.value.kind, caught.value.code) == (FailureKind.TRANSIENT, 500)
    assert "Events API" in caught.value.message
    assert mailgun.api_key not in repr(caught.value)
    wrong = MailgunProvider("wrong-key", mailgun.domain, api_url=mailgun.url)
    with wrong, pytest.raises(ProviderError) as refused:
        wrong.lookup_batch(REF, people(2), SINCE)
    assert refused.value.kind is FailureKind.FATAL


def test_a_paging_link_to_another_host_is_not_followed(monkeypatch: Any) -> None:
    class Page:
        status_code = 200
        text = (
            '{"items": [{"event": "accepted"}], '
            '"paging": {"next": "https://evil.example/v3/mg.example.com/events/x"}}'
        )

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the key would have been sent to another host")

    monkeypatch.setattr("flask_campaign_retry.providers.mailgun.events.requests.get", never)
    pages = mailgun_events.walk_events(
        Page,
        api_url="https://api.mailgun.net",
        domain="mg.example.com",
        auth=("api", "k"),
        timeout=(1.0, 1.0),
    )
    with pytest.raises(ProviderError, match="not followed"):
        list(pages)


def test_sandbox_lookup_knows_what_it_accepted() -> None:
    sandbox = SandboxProvider(
        [FaultRule(accept_then_hang=True, hang=1, on_calls=frozenset({1})), FaultRule(hang=1)]
    )
    with pytest.raises(ProviderError):
        sandbox.send_batch(MESSAGE, people(2), REF)
    lost = BatchRef(campaign_id=42, attempt_id=3, batch_id=99)
    with pytest.raises(ProviderError):
        sandbox.send_batch(MESSAGE, people(1, start=10), lost)
    found = sandbox.lookup_batch(REF, people(2), SINCE)
    assert {item.outcome for item in found.values()} == {LookupOutcome.ACCEPTED}
    assert found[1].message_id == sandbox.accepted[0].message_id
    assert sandbox.lookup_batch(lost, people(1, start=10), SINCE)[10].outcome is (
        LookupOutcome.NOT_FOUND
    )


# -- reconciling the rows ---------------------------------------------------------------------


@pytest.fixture
def uncertain_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(**UNCERTAIN_CONFIG)
    with app.app_context():
        yield app


def test_accepted_batch_reconciles_to_sent_without_resending(
    uncertain_app: Flask, mailgun: FakeMailgun
) -> None:
    rule = FaultRule(accept_then_hang=True, hang=0.8)
    campaign = uncertain_campaign(uncertain_app, mailgun, rule)
    mailgun.events.deliver("rc000000@example.com")
    mailgun.events.fail("rc000001@example.com", code=550)
    sends = mailgun.request_count

    counts = reconcile_uncertain(get_state(), campaign.id, settle_seconds=0)

    assert counts["examined"] == 4 and counts["batches"] == 1
    assert (counts["sent"], counts["delivered"], counts["failed_permanent"]) == (2, 1, 1)
    assert counts["retryable"] == counts["still_uncertain"] == 0
    rows = recipient_rows(campaign)
    assert rows["rc000000@example.com"].status is RecipientStatus.DELIVERED
    assert rows["rc000001@example.com"].status is RecipientStatus.FAILED
    assert rows["rc000001@example.com"].failure_kind == "permanent"
    for email in ("rc000002@example.com", "rc000003@example.com"):
        assert rows[email].status is RecipientStatus.SENT
        assert rows[email].provider_message_id == mailgun.accepted[0].message_id
        assert rows[email].failure_kind is None and rows[email].sent_at is not None
    assert reload(campaign).delivered_count == 1
    assert mailgun.request_count == sends
    assert set(mailgun.accepted_emails().values()) == {1}
    again = reconcile_uncertain(get_state(), campaign.id, settle_seconds=0)
    assert again["examined"] == 0  # nothing left to settle


def test_never_accepted_batch_becomes_retryable_after_the_settle_time(
    make_app: Callable[..., Flask], mailgun: FakeMailgun
) -> None:
    app = make_app(**UNCERTAIN_CONFIG, CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS=0)
    with app.app_context():
        campaign = uncertain_campaign(app, mailgun, FaultRule(hang=0.8))
        [batch] = batches(campaign)

        too_soon = reconcile_batches(get_state(), [batch.id], settle_seconds=3600)
        assert too_soon["still_uncertain"] == 4
        assert {r.status for r in recipient_rows(campaign).values()} == {RecipientStatus.UNCERTAIN}

        assert reconcile_due(get_state(), settle_seconds=3600)["batches"] == 0
        too_old = reconcile_batches(
            get_state(), [batch.id], settle_seconds=0, now=utcnow() + EVENT_RETENTION
        )
        assert too_old["still_uncertain"] == 4  # its events may have expired: proves nothing

        counts = reconcile_due(get_state())  # settle time from the config
        assert (counts["batches"], counts["retryable"]) == (1, 4)
        rows = recipient_rows(campaign).values()
        assert {(r.status, r.failure_kind, r.error_message) for r in rows} == {
            (RecipientStatus.FAILED, "transient", ABSENT_MESSAGE)
        }

        assert reload(campaign).status is EmailStatus.FAILED
        hostapp.retry.retry(reload(campaign))
        drain(app)
        assert reload(campaign).status is EmailStatus.SENT
        assert mailgun.accepted_emails() == {address: 1 for address in emails(4, prefix="rc")}


def test_events_api_failure_leaves_recipients_uncertain(
    uncertain_app: Flask, mailgun: FakeMailgun
) -> None:
    rule = FaultRule(accept_then_hang=True, hang=0.8)
    campaign = uncertain_campaign(uncertain_app, mailgun, rule)
    mailgun.events.break_api(503)

    counts = reconcile_uncertain(get_state(), campaign.id, settle_seconds=0)

    assert (counts["lookup_failed"], counts["still_uncertain"]) == (1, 4)
    assert {r.status for r in recipient_rows(campaign).values()} == {RecipientStatus.UNCERTAIN}


def test_a_provider_without_lookup_changes_nothing(
    uncertain_app: Flask, mailgun: FakeMailgun
) -> None:
    rule = FaultRule(accept_then_hang=True, hang=0.8)
    campaign = uncertain_campaign(uncertain_app, mailgun, rule)

    class SendOnly:
        name = "send-only"

        def send_batch(self, *args: Any) -> Any:
            raise AssertionError("reconciliation must not send")

    get_state().use_provider(SendOnly())
    counts = reconcile_uncertain(get_state(), campaign.id, settle_seconds=0)
    assert (counts["unsupported"], counts["still_uncertain"]) == (1, 4)
    assert {r.status for r in recipient_rows(campaign).values()} == {RecipientStatus.UNCERTAIN}
