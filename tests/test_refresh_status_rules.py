"""The recount after rows changed outside an attempt (a reconciliation, delivery events):
exactly which campaign it rewrites and with what, when ``failed_at`` is kept, the halt of the
campaign's current attempt in its reason, a SENDING or vanished campaign left alone, a
campaign that moved on meanwhile not overwritten, and the one signal it sends (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus, signals
from flask_campaign_retry.campaign_fields import column_values
from flask_campaign_retry.engine import finalize
from flask_campaign_retry.engine.finalize import refresh_campaign_status
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, recipient_rows, reload
from tests.webapp import partially_sent, set_columns

FINISHED = {
    "sent": signals.campaign_sent,
    "partially_sent": signals.campaign_partially_sent,
    "failed": signals.campaign_failed,
    "retries_exhausted": signals.retries_exhausted,
}


@pytest.fixture
def received() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """(signal, campaign id, keyword arguments) of each finishing signal sent in the test."""
    seen: list[tuple[str, Any, dict[str, Any]]] = []
    receivers = {}
    for name, signal in FINISHED.items():

        def receiver(sender: Any, _name: str = name, **extra: Any) -> None:
            seen.append((_name, sender.id, extra))

        receivers[name] = receiver
        signal.connect(receiver)
    yield seen
    for name, signal in FINISHED.items():
        signal.disconnect(receivers[name])


def _settle(campaign: Any, status: RecipientStatus, emails: list[str]) -> None:
    """Write ``status`` into these recipients' rows, as a reconciliation would."""
    table = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(table)
        .where(table.c.campaign_id == campaign.id, table.c.email.in_(emails))
        .values(status=status, failure_kind=None, error_code=None, error_message=None)
    )
    hostapp.db.session.commit()


def _snapshot(campaign: Any) -> tuple[Any, ...]:
    c = reload(campaign)
    return (c.status, c.successful_sends, c.total_recipients, c.failure_reason, c.failed_at)


FAILED_TWO = ["main000000@example.com", "main000001@example.com"]


def test_rows_all_accepted_since_make_it_sent_and_nothing_else_changes(
    web_app: Flask, mailgun: Any, received: list[Any]
) -> None:
    campaign = partially_sent(web_app, mailgun)
    other = partially_sent(web_app, mailgun)
    assert reload(campaign).failed_at is not None
    others_before = _snapshot(other)
    _settle(campaign, RecipientStatus.DELIVERED, FAILED_TWO)
    received.clear()

    assert refresh_campaign_status(get_state(), campaign.id) is EmailStatus.SENT
    assert _snapshot(campaign) == (EmailStatus.SENT, 6, 6, None, None)
    assert _snapshot(other) == others_before
    assert received == [("sent", campaign.id, {"attempt": None, "status": EmailStatus.SENT})]
    # A second recount finds it SENT already: the same answer, no second signal.
    assert refresh_campaign_status(get_state(), campaign.id) is EmailStatus.SENT
    assert len(received) == 1


def test_a_campaign_still_failing_keeps_its_failed_at_and_gets_a_new_reason(
    web_app: Flask, mailgun: Any, received: list[Any]
) -> None:
    campaign = partially_sent(web_app, mailgun)
    failed_at = reload(campaign).failed_at
    message = recipient_rows(campaign)[FAILED_TWO[1]].error_message
    _settle(campaign, RecipientStatus.SENT, FAILED_TWO[:1])
    received.clear()

    assert refresh_campaign_status(get_state(), campaign.id) is EmailStatus.PARTIALLY_SENT
    reason = f"1 of 6 recipients did not get the email: 1 temporary failure ({message})."
    assert _snapshot(campaign) == (EmailStatus.PARTIALLY_SENT, 5, 6, reason, failed_at)
    assert received == []


def test_the_current_attempts_halt_is_named_in_the_reason(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    [attempt] = attempts(campaign)
    table = get_state().models.attempt.__table__
    hostapp.db.session.execute(
        sa.update(table).where(table.c.id == attempt.id).values(halt_reason="the key was refused")
    )
    hostapp.db.session.commit()

    assert refresh_campaign_status(get_state(), campaign.id) is EmailStatus.PARTIALLY_SENT
    assert reload(campaign).failure_reason.startswith(
        "Sending stopped: the key was refused. 2 of 6 recipients did not get the email: "
    )


def test_a_sending_or_unknown_campaign_is_left_alone(web_app: Flask, mailgun: Any) -> None:
    campaign = set_columns(partially_sent(web_app, mailgun), status=EmailStatus.SENDING)
    _settle(campaign, RecipientStatus.SENT, FAILED_TWO)
    before = _snapshot(campaign)

    assert refresh_campaign_status(get_state(), campaign.id) is None
    assert _snapshot(campaign) == before
    assert refresh_campaign_status(get_state(), 987654) is None


def test_a_campaign_that_moved_on_during_the_recount_is_not_overwritten(
    web_app: Flask, mailgun: Any, monkeypatch: pytest.MonkeyPatch, received: list[Any]
) -> None:
    campaign = partially_sent(web_app, mailgun)
    _settle(campaign, RecipientStatus.SENT, FAILED_TWO)
    real = finalize._campaign_outcome
    table = get_state().models.campaign.__table__

    def retry_starts_meanwhile(state: Any, row: Any, halt_reason: str | None) -> Any:
        outcome = real(state, row, halt_reason)
        hostapp.db.session.execute(
            sa.update(table)
            .where(table.c.id == campaign.id)
            .values(column_values(table, status=EmailStatus.SENDING))
        )
        return outcome

    monkeypatch.setattr(finalize, "_campaign_outcome", retry_starts_meanwhile)
    received.clear()

    assert refresh_campaign_status(get_state(), campaign.id) is EmailStatus.SENT
    assert reload(campaign).status is EmailStatus.SENDING
    assert reload(campaign).successful_sends == 4
    assert received == []
