"""The SMTP provider through the whole engine, against the SMTP sink on real loopback sockets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.providers.sandbox.provider import SandboxProvider
from flask_campaign_retry.providers.smtp import SMTPProvider, SMTPSettings
from flask_campaign_retry.testing.smtp_faults import SMTPFault
from flask_campaign_retry.testing.smtp_sink import SMTPSink
from tests import hostapp
from tests.helpers import (
    batches,
    campaign_with,
    drain,
    emails,
    recipient_rows,
    reload,
    status_counts,
)

PASSWORD = "s3cret-smtp-pass"


@pytest.fixture
def sink() -> Iterator[SMTPSink]:
    with SMTPSink(credentials=("news", PASSWORD)) as running:
        yield running


def smtp_app(make_app: Any, sink: SMTPSink, **overrides: Any) -> Flask:
    config = {
        "CAMPAIGN_RETRY_PROVIDER": "smtp",
        **sink.config(),
        "CAMPAIGN_RETRY_SMTP_TIMEOUT": 1.0,
        **overrides,
    }
    return make_app(**config)


def test_five_refused_of_1000_are_exactly_those_five_failed_each_asked_once(
    make_app: Any, sink: SMTPSink
) -> None:
    sink.add_fault(
        SMTPFault(
            "rcpt", code=550, match=r"^bounce", message="5.1.1 <{address}>: mailbox unavailable"
        )
    )
    refused = [f"bounce{i}@example.com" for i in range(5)]
    addresses = emails(995)
    app = smtp_app(make_app, sink)
    with app.app_context():
        campaign = campaign_with(addresses[:400] + refused + addresses[400:])
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        rows = recipient_rows(campaign)
        failed = {email for email, row in rows.items() if row.status.value == "FAILED"}
        assert failed == set(refused)
        assert {rows[e].failure_kind for e in refused} == {"permanent"}
        assert {rows[e].error_code for e in refused} == {550}
        assert {sink.rcpt_attempts[e] for e in refused} == {1}
        assert all(sink.count_for(e) == 1 for e in addresses)
        assert len(sink.messages) == 995
        assert campaign.status is EmailStatus.PARTIALLY_SENT
        assert "5 rejected (SMTP 550 5.1.1 mailbox unavailable)" in campaign.failure_reason
        assert sink.connections == 1  # one connection reused for the whole campaign


def test_421_mid_batch_leaves_the_rest_temporary_and_retried(make_app: Any, sink: SMTPSink) -> None:
    sink.add_fault(SMTPFault("mail", code=421, on_calls={4}))
    addresses = emails(10)
    app = smtp_app(make_app, sink)
    with app.app_context():
        campaign = campaign_with(addresses)
        hostapp.retry.send(campaign)
        drain(app, until=lambda: reload(campaign).status is not EmailStatus.SENDING)
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.SENT
        assert [sink.count_for(e) for e in addresses] == [1] * 10
        [batch] = batches(campaign)
        assert batch.tries == 2  # the first 3 went out, the 7 others on the second try
        assert {row.submissions for row in recipient_rows(campaign).values()} == {1, 2}
        assert sum(row.submissions == 2 for row in recipient_rows(campaign).values()) == 7


def test_421_with_automatic_retry_off_leaves_the_rest_failed_transient(
    make_app: Any, sink: SMTPSink
) -> None:
    sink.add_fault(SMTPFault("mail", code=421, on_calls={4}))
    app = smtp_app(make_app, sink, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        campaign = campaign_with(emails(10))
        hostapp.retry.send(campaign)
        drain(app)
        rows = recipient_rows(campaign)
        assert status_counts(campaign) == {"SENT": 3, "FAILED": 7}
        assert {r.failure_kind for r in rows.values() if r.status.value == "FAILED"} == {
            "transient"
        }
        assert reload(campaign).status is EmailStatus.PARTIALLY_SENT


def test_dropped_connection_before_data_resends_nothing_twice(
    make_app: Any, sink: SMTPSink
) -> None:
    sink.add_fault(SMTPFault("rcpt", drop=True, on_calls={5}))
    addresses = emails(12)
    app = smtp_app(make_app, sink)
    with app.app_context():
        campaign = campaign_with(addresses)
        hostapp.retry.send(campaign)
        drain(app, until=lambda: reload(campaign).status is not EmailStatus.SENDING)
        assert reload(campaign).status is EmailStatus.SENT
        assert [sink.count_for(e) for e in addresses] == [1] * 12
        assert len(sink.messages) == 12
        assert sink.connections == 2  # reopened after the drop


def test_no_answer_after_data_is_uncertain_and_never_resent(make_app: Any, sink: SMTPSink) -> None:
    addresses = emails(6)
    sink.add_fault(SMTPFault("data", hang=True, match=addresses[2], times=1))
    app = smtp_app(make_app, sink)
    with app.app_context():
        campaign = campaign_with(addresses)
        hostapp.retry.send(campaign)
        drain(app, until=lambda: reload(campaign).status is not EmailStatus.SENDING)
        rows = recipient_rows(campaign)
        assert rows[addresses[2]].status.value == "UNCERTAIN"
        assert status_counts(campaign) == {"SENT": 5, "UNCERTAIN": 1}
        assert [sink.count_for(e) for e in addresses] == [1] * 6
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.PARTIALLY_SENT
        assert "1 outcome unknown" in campaign.failure_reason
        drain(app)  # nothing left to run resends it
        assert sink.count_for(addresses[2]) == 1


def test_personalised_to_and_placeholders_are_right_for_every_recipient(
    make_app: Any, sink: SMTPSink
) -> None:
    addresses = emails(30)
    app = smtp_app(make_app, sink)
    with app.app_context():
        hostapp.add_subscribers("main", addresses)
        evil = hostapp.Subscriber(
            list_name="main", email="evil@example.com", first_name="x\r\nBcc: spy@example.net"
        )
        hostapp.db.session.add(evil)
        hostapp.db.session.commit()
        campaign = hostapp.new_campaign("main")
        hostapp.retry.send(campaign)
        drain(app)
        by_to = {message.rcpt_tos: message.parsed for message in sink.messages}
        assert sorted(by_to) == [(address,) for address in addresses]
        for i, address in enumerate(addresses):
            parsed = by_to[(address,)]
            assert parsed["To"] == address
            assert parsed["Subject"] == f"Hello n{i}"
            assert f"<p>Hi n{i}</p>" in parsed.get_body().get_content()
        # A variable that would put a line break into the Subject is refused before sending,
        # for that recipient only (issue 11.3); nothing reaches the sink for it.
        assert all(m.rcpt_tos != ("spy@example.net",) for m in sink.messages)
        rows = recipient_rows(campaign)
        evil_row = rows.pop("evil@example.com")
        assert (evil_row.status, evil_row.failure_kind) == (RecipientStatus.FAILED, "permanent")
        assert evil_row.error_message.startswith("invalid recipient variable 'first_name'")
        ids = {row.provider_message_id for row in rows.values()}
        assert len(ids) == 30  # one message, one id, per recipient
        assert by_to[(addresses[0],)]["Message-ID"] == f"<{rows[addresses[0]].provider_message_id}>"


def test_wrong_credentials_stop_the_campaign_with_a_reason_saying_what_to_fix(
    make_app: Any, sink: SMTPSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = smtp_app(make_app, sink, MAIL_PASSWORD="wrong-pass-123", CAMPAIGN_RETRY_BATCH_SIZE=5)
    with app.app_context():
        campaign = campaign_with(emails(20))
        hostapp.retry.send(campaign)
        drain(app)
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.FAILED
        assert campaign.failure_reason.startswith("Sending stopped: SMTP 535")
        assert "check the SMTP user name and password" in campaign.failure_reason
        assert "MAIL_PASSWORD" in campaign.failure_reason
        assert sink.messages == [] and sum(sink.rcpt_attempts.values()) == 0
        assert [b.status for b in batches(campaign)] == ["DONE"] + ["CANCELLED"] * 3
        rows = recipient_rows(campaign).values()
        assert all("wrong-pass-123" not in (row.error_message or "") for row in rows)
        assert "wrong-pass-123" not in caplog.text
        assert "wrong-pass-123" not in repr(SMTPProvider.from_config(app.config))


def test_provider_for_sends_each_campaign_through_its_owners_server(
    make_app: Any, sink: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SMTPSink() as other:
        owners = {
            "alice": SMTPSettings(
                server="127.0.0.1", port=sink.port, username="news", password=PASSWORD, timeout=2
            ),
            "bob": SMTPSettings(server="127.0.0.1", port=other.port, timeout=2),
        }
        built: list[str] = []

        def provider_for(campaign: Any) -> SMTPProvider | None:
            settings = owners.get(campaign.list_name)
            if settings is None:
                return None
            built.append(campaign.list_name)
            return SMTPProvider(settings)

        monkeypatch.setattr(hostapp.retry.hooks, "provider_for", provider_for)
        # The configured default points nowhere: only the owners' servers can succeed.
        app = make_app(
            CAMPAIGN_RETRY_PROVIDER="smtp",
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=1,
            CAMPAIGN_RETRY_BATCH_SIZE=4,
        )
        with app.app_context():
            alice = campaign_with(emails(10, prefix="a"), list_name="alice")
            bob = campaign_with(emails(6, prefix="b"), list_name="bob")
            hostapp.retry.send(alice)
            hostapp.retry.send(bob)
            drain(app)
            assert reload(alice).status is EmailStatus.SENT
            assert reload(bob).status is EmailStatus.SENT
        assert sorted(e for m in sink.messages for e in m.rcpt_tos) == emails(10, prefix="a")
        assert sorted(e for m in other.messages for e in m.rcpt_tos) == emails(6, prefix="b")
        assert (sink.connections, other.connections) == (1, 1)  # cached per owner
        assert built.count("alice") == 3 and built.count("bob") == 2


def test_provider_for_takes_a_key_and_provider_pair_and_caches_it(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[SandboxProvider] = []

    def provider_for(campaign: Any) -> tuple[str, SandboxProvider]:
        built.append(SandboxProvider.from_config({}))
        return "tenant-1", built[-1]

    monkeypatch.setattr(hostapp.retry.hooks, "provider_for", provider_for)
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2)
    with app.app_context():
        campaign = campaign_with(emails(6))
        hostapp.retry.send(campaign)
        drain(app)
        assert reload(campaign).status is EmailStatus.SENT
    assert len(built) == 3  # asked once per batch, but the first one built is kept:
    assert [provider.call_count for provider in built] == [3, 0, 0]


def test_provider_for_returning_something_else_stops_the_campaign_saying_so(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hostapp.retry.hooks, "provider_for", lambda campaign: "smtp")
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert "@retry.provider_for must return None, a provider" in campaign.failure_reason
