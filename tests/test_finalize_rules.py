"""The finalizer's counts, exactly: delivered recipients count as accepted for the attempt and
the campaign, statuses with no rows count zero, and the halt it reads is the attempt's row as
written by another session, never a stale copy this session loaded earlier (SQLite and
PostgreSQL)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.engine.finalize import finalize_attempt
from flask_campaign_retry.hooks import Hooks
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, campaign_with, drain, emails, reload
from tests.webapp import partially_sent


def _reopen(campaign: Any) -> Any:
    """The campaign's one attempt, its end undone (as if its finalizer had not run yet)."""
    [attempt] = attempts(campaign)
    table = get_state().models.attempt.__table__
    hostapp.db.session.execute(
        sa.update(table).where(table.c.id == attempt.id).values(ended_at=None)
    )
    hostapp.db.session.commit()
    return attempt


def _set_row(campaign: Any, email: str, status: RecipientStatus, kind: str | None) -> None:
    table = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(table)
        .where(table.c.campaign_id == campaign.id, table.c.email == email)
        .values(status=status, failure_kind=kind)
    )
    hostapp.db.session.commit()


def _counts(attempt_id: int) -> tuple[int, int, int, int, str | None]:
    table = get_state().models.attempt.__table__
    row = hostapp.db.session.execute(sa.select(table).where(table.c.id == attempt_id)).one()
    hostapp.db.session.commit()
    return (row.sent, row.failed, row.uncertain, row.skipped, row.outcome)


def test_delivered_rows_count_as_accepted_for_the_attempt_and_the_campaign(
    web_app: Flask, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)  # main000000-01 FAILED, 02-05 SENT
    attempt = _reopen(campaign)
    _set_row(campaign, "main000002@example.com", RecipientStatus.DELIVERED, None)
    _set_row(campaign, "main000003@example.com", RecipientStatus.UNCERTAIN, "uncertain")
    _set_row(campaign, "main000004@example.com", RecipientStatus.SKIPPED, None)

    assert finalize_attempt(get_state(), attempt.id) is EmailStatus.PARTIALLY_SENT
    assert _counts(attempt.id) == (2, 2, 1, 1, "PARTIALLY_SENT")
    campaign = reload(campaign)
    assert (campaign.successful_sends, campaign.total_recipients) == (2, 6)
    assert campaign.failure_reason.startswith("3 of 5 recipients did not get the email: ")


def test_statuses_without_rows_count_zero(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    attempt = _reopen(campaign)
    assert finalize_attempt(get_state(), attempt.id) is EmailStatus.PARTIALLY_SENT
    assert _counts(attempt.id) == (4, 2, 0, 0, "PARTIALLY_SENT")


def test_the_finalizer_reads_the_halt_written_by_another_session_not_a_stale_copy(
    web_app: Flask, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    attempt = _reopen(campaign)
    loaded = hostapp.db.session.get(get_state().models.attempt, attempt.id)
    assert loaded is not None and loaded.halt_reason is None  # this session now holds a copy
    table = get_state().models.attempt.__table__
    with hostapp.db.engine.begin() as other:
        other.execute(
            sa.update(table).where(table.c.id == attempt.id).values(halt_reason="key refused")
        )

    assert finalize_attempt(get_state(), attempt.id) is EmailStatus.PARTIALLY_SENT
    assert reload(campaign).failure_reason.startswith("Sending stopped: key refused. ")


def test_the_attempt_keeps_the_campaigns_reason(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    [attempt] = attempts(campaign)
    reason = reload(campaign).failure_reason
    assert reason.startswith("2 of 6 recipients did not get the email: ")
    assert attempt.error_summary == reason


def test_an_attempt_with_nobody_to_consider_is_sent_unless_it_was_halted(
    app: Flask, mailgun: Any, hooks: Hooks
) -> None:
    hooks.exclude_recipients = lambda campaign, batch: batch
    everyone_excluded = campaign_with(emails(3, prefix="ex"), list_name="ex")
    hostapp.retry.send(everyone_excluded)
    drain(app)
    [attempt] = attempts(everyone_excluded)
    assert (attempt.targeted, attempt.skipped, attempt.halt_reason) == (3, 3, None)
    assert attempt.outcome == "SENT"

    empty = hostapp.new_campaign("nobody")
    hostapp.retry.send(empty)
    drain(app)
    [attempt] = attempts(empty)
    assert (attempt.targeted, attempt.halt_reason is not None) == (0, True)
    assert (attempt.outcome, reload(empty).status) == ("FAILED", EmailStatus.FAILED)
