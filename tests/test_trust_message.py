"""A message no provider may be handed fails the campaign at preparation with a reason naming the
field (issue 11.2, 11.3): no request is made, nothing is left SENDING or UNCERTAIN, and an
exception a provider raises before its request is "not submitted", never UNCERTAIN."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus, FailureKind, OutgoingMessage, RecipientStatus
from flask_campaign_retry.statuses import BatchStatus
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from tests import hostapp
from tests.helpers import attempts, batches, campaign_with, drain, emails, recipient_rows, reload


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        yield app


@pytest.fixture
def use_builder() -> Iterator[Callable[..., None]]:
    original = hostapp.retry.hooks.message_builder

    def use(**fields: Any) -> None:
        def build(campaign: Any) -> Any:
            base: dict[str, Any] = {
                "subject": "Hello",
                "from": "news@example.com",
                "text": "Hi",
            }
            return {**base, **fields}

        hostapp.retry.message_builder(build)

    yield use
    hostapp.retry.message_builder(original)  # type: ignore[arg-type]


REFUSED = [
    ({"headers": {"X-Campaign": "a\r\nBcc: victim@example.org"}}, "header 'X-Campaign'"),
    ({"headers": {"X-Bad\nName": "v"}}, "header name 'X-Bad\\nName'"),
    ({"headers": {"X-Count": 3}}, "header 'X-Count' must be a string, got int"),
    ({"reply_to": "a@example.com\r\nBcc: victim@example.org"}, "reply-to contains CR/LF"),
    ({"subject": "Hi\r\nBcc: victim@example.org"}, "subject contains CR/LF"),
    ({"subject": "Hi\x00there"}, "subject contains NUL"),
    ({"from": "news@example.com\nBcc: victim@example.org"}, "from contains LF"),
    ({"tags": ["a", "b", "c", "d"]}, "tags: Mailgun allows at most 3 o:tag values"),
]


@pytest.mark.parametrize(("fields", "named"), REFUSED)
def test_a_refused_message_fails_the_campaign_at_once_naming_the_field(
    app: Flask, mailgun: FakeMailgun, use_builder: Callable[..., None], fields: Any, named: str
) -> None:
    use_builder(**fields)
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)

    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert campaign.failure_reason.startswith(
        "Sending stopped: the message was refused before sending: "
    )
    assert named in campaign.failure_reason
    assert mailgun.request_count == 0
    assert [b.status for b in batches(campaign)] == []
    assert [a.halt_reason is not None for a in attempts(campaign)] == [True]


def test_after_fixing_the_message_retry_runs_the_loader_and_sends(
    app: Flask, mailgun: FakeMailgun, use_builder: Callable[..., None]
) -> None:
    use_builder(headers={"X-Campaign": "a\r\nb"})
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)
    assert hostapp.retry.retry_eligibility(reload(campaign)).allowed

    use_builder(headers={"X-Campaign": "spring"})
    hostapp.retry.retry(reload(campaign))
    drain(app)
    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends) == (EmailStatus.SENT, 3)
    assert sorted(mailgun.accepted_emails()) == emails(3)


def test_a_recipient_variable_with_a_line_break_in_the_subject_fails_only_that_recipient(
    app: Flask, mailgun: FakeMailgun
) -> None:
    # hostapp's subject is "Hello %recipient.first_name%".
    hostapp.add_subscribers("main", ["ok1@example.com", "ok2@example.com"])
    hostapp.db.session.execute(
        sa.insert(hostapp.Subscriber).values(
            list_name="main", email="eve@example.com", first_name="Eve\r\nBcc: x@example.org"
        )
    )
    hostapp.db.session.commit()
    campaign = hostapp.new_campaign("main")
    hostapp.retry.send(campaign)
    drain(app)

    rows = recipient_rows(campaign)
    eve = rows["eve@example.com"]
    assert (eve.status, eve.failure_kind) == (RecipientStatus.FAILED, FailureKind.PERMANENT.value)
    assert eve.error_message.startswith("invalid recipient variable 'first_name'")
    assert sorted(mailgun.accepted_emails()) == ["ok1@example.com", "ok2@example.com"]
    assert reload(campaign).status is EmailStatus.PARTIALLY_SENT


def test_a_provider_exception_before_the_request_is_not_submitted_never_uncertain(
    app: Flask, mailgun: FakeMailgun, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_form(*args: Any) -> Any:
        raise TypeError("form cannot be built")

    monkeypatch.setattr("flask_campaign_retry.providers.mailgun.provider.build_form", broken_form)
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)

    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert "nothing was submitted" in campaign.failure_reason
    assert "TypeError: form cannot be built" in campaign.failure_reason
    assert {r.status for r in recipient_rows(campaign).values()} == {RecipientStatus.FAILED}
    assert {r.failure_kind for r in recipient_rows(campaign).values()} == {"fatal"}
    assert [b.status for b in batches(campaign)] == [BatchStatus.DONE]
    assert mailgun.request_count == 0

    monkeypatch.undo()
    assert hostapp.retry.retry_eligibility(campaign).retryable == 3
    hostapp.retry.retry(campaign)
    drain(app)
    assert reload(campaign).status is EmailStatus.SENT
    assert sorted(mailgun.accepted_emails().elements()) == emails(3)


def test_an_outgoing_message_with_a_crlf_header_is_refused_too(
    app: Flask, mailgun: FakeMailgun, use_builder: Callable[..., None]
) -> None:
    original = hostapp.retry.hooks.message_builder

    def build(campaign: Any) -> OutgoingMessage:
        return OutgoingMessage(
            subject="Hi", from_address="news@example.com", text="t", headers={"X-A": "1\n2"}
        )

    hostapp.retry.message_builder(build)
    try:
        campaign = campaign_with(emails(2))
        hostapp.retry.send(campaign)
        drain(app)
    finally:
        hostapp.retry.message_builder(original)  # type: ignore[arg-type]
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.FAILED
    assert "header 'X-A' contains LF" in campaign.failure_reason
    assert mailgun.request_count == 0
