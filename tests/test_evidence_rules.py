"""The evidence ranking's exact rules, one at a time: what a failure or an acceptance writes into
the row, which of two failures of the same rank is kept, that a duplicate changes nothing, and
that the write is a compare-and-set on every column it read (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import RecipientStatus
from flask_campaign_retry.providers.base import LookupOutcome
from flask_campaign_retry.reconciliation import evidence as evidence_module
from flask_campaign_retry.reconciliation.evidence import (
    DELAYED,
    NOT_DELIVERED,
    Applied,
    EventTarget,
    Evidence,
    RowState,
    apply_evidence,
    next_state,
    row_rank,
)
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import batches, campaign_with, drain, emails, recipient_rows, reload

AT = datetime(2026, 12, 1, 12, 0, 0)
SENT = RowState(RecipientStatus.SENT)


def failed(code: int | None, detail: str = "", *, permanent: bool = True) -> Evidence:
    kind = LookupOutcome.FAILED_PERMANENT if permanent else LookupOutcome.FAILED_TEMPORARY
    return Evidence(kind, AT, code, detail)


def test_not_found_is_refused_as_evidence_with_a_message_that_says_why() -> None:
    with pytest.raises(ValueError, match=r"^NOT_FOUND is the absence of evidence, not evidence\.$"):
        Evidence(LookupOutcome.NOT_FOUND, AT)


@pytest.mark.parametrize(
    ("permanent", "status", "kind", "prefix"),
    [
        (True, RecipientStatus.FAILED, "permanent", NOT_DELIVERED),
        (False, RecipientStatus.SENT, None, DELAYED),
    ],
)
def test_a_failure_writes_its_code_and_its_detail_and_no_empty_brackets(
    permanent: bool, status: RecipientStatus, kind: str | None, prefix: str
) -> None:
    with_detail = next_state(SENT, failed(550, "no such user", permanent=permanent))
    without = next_state(SENT, failed(421, permanent=permanent))
    assert with_detail == RowState(status, kind, 550, f"{prefix} (no such user)")
    assert without == RowState(status, kind, 421, prefix)


def test_acceptance_of_a_failed_row_clears_its_kind_code_and_message() -> None:
    row = RowState(RecipientStatus.FAILED, "transient", 500, "HTTP 500 from Mailgun")
    assert next_state(row, Evidence(LookupOutcome.ACCEPTED, AT)) == SENT


def test_a_delayed_row_ranks_above_an_accepted_one_and_below_a_final_failure() -> None:
    delayed = RowState(RecipientStatus.SENT, None, 421, f"{DELAYED} (greylisted)")
    not_delivered = RowState(RecipientStatus.FAILED, "permanent", 550, NOT_DELIVERED)
    assert [row_rank(SENT), row_rank(delayed), row_rank(not_delivered)] == [1, 2, 3]


@pytest.mark.parametrize("permanent", [True, False])
def test_of_two_failures_of_one_rank_the_smaller_code_is_kept_in_either_order(
    permanent: bool,
) -> None:
    low, high = failed(421, "b", permanent=permanent), failed(452, "a", permanent=permanent)
    first_low = next_state(next_state(SENT, low) or SENT, high)
    first_high_row = next_state(SENT, high)
    assert first_high_row is not None
    assert first_low is None  # the kept failure already has the smaller code
    assert next_state(first_high_row, low) == next_state(SENT, low)


def test_a_failure_without_a_code_sorts_before_every_code_even_zero() -> None:
    no_code, zero = failed(None, "x"), failed(0, "x")
    row_zero = next_state(SENT, zero)
    row_none = next_state(SENT, no_code)
    assert row_zero is not None and row_none is not None
    assert next_state(row_zero, no_code) == row_none
    assert next_state(row_none, zero) is None


def test_a_duplicate_failure_or_delivery_changes_nothing() -> None:
    for evidence in (
        failed(550, "bounce"),
        failed(421, "greylisted", permanent=False),
        Evidence(LookupOutcome.DELIVERED, AT),
    ):
        once = next_state(SENT, evidence)
        assert once is not None
        assert next_state(once, evidence) is None, evidence.kind


# -- the write --------------------------------------------------------------------------------


def _sent_row(app: Flask) -> tuple[Any, Any, EventTarget]:
    campaign = campaign_with(emails(1, prefix="ev"), list_name="ev")
    hostapp.retry.send(campaign)
    drain(app)
    [batch] = batches(campaign)
    [row] = recipient_rows(campaign).values()
    target = EventTarget(str(campaign.id), batch.attempt_id, batch.id, row.id, row.email)
    return campaign, row, target


def _columns(row_id: int) -> RowState:
    table = get_state().models.recipient.__table__
    r = hostapp.db.session.execute(sa.select(table).where(table.c.id == row_id)).one()
    hostapp.db.session.commit()
    return RowState(
        RecipientStatus(r.status), r.failure_kind, r.error_code, r.error_message, r.delivered_at
    )


CHANGED_COLUMN = {
    "status": {"status": RecipientStatus.UNCERTAIN},
    "failure_kind": {"failure_kind": "uncertain"},
    "error_code": {"error_code": 1},
    "error_message": {"error_message": "x"},
    "delivered_at": {"delivered_at": AT},
}


@pytest.mark.parametrize("column", sorted(CHANGED_COLUMN))
def test_the_write_is_refused_when_any_column_it_read_has_changed(app: Flask, column: str) -> None:
    _, row, _ = _sent_row(app)
    stale = RowState(RecipientStatus.SENT)
    read = replace(stale, **CHANGED_COLUMN[column])
    new = RowState(RecipientStatus.DELIVERED, delivered_at=AT + timedelta(hours=1))
    assert evidence_module._compare_and_set(get_state(), row.id, read, new) is False
    hostapp.db.session.commit()
    assert _columns(row.id) == stale
    assert evidence_module._compare_and_set(get_state(), row.id, stale, new) is True
    hostapp.db.session.commit()
    assert _columns(row.id) == new


def test_an_event_that_never_wins_its_write_gives_up_after_five_tries_and_changes_nothing(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, row, target = _sent_row(app)
    tries: list[int] = []

    def always_refused(state: Any, recipient_id: int, old: RowState, new: RowState) -> bool:
        tries.append(recipient_id)
        return False

    monkeypatch.setattr(evidence_module, "_compare_and_set", always_refused)
    with pytest.raises(
        RuntimeError,
        match=rf"^recipient {row.id} kept changing while an event was applied; "
        r"the provider will deliver the event again$",
    ):
        apply_evidence(get_state(), target, Evidence(LookupOutcome.DELIVERED, AT))
    assert tries == [row.id] * 5
    assert _columns(row.id) == SENT
    assert reload(campaign).delivered_count == 0


def test_a_delivery_counts_once_for_its_campaign(app: Flask) -> None:
    campaign, row, target = _sent_row(app)
    delivered = Evidence(LookupOutcome.DELIVERED, AT)
    assert apply_evidence(get_state(), target, delivered) is Applied.CHANGED
    assert apply_evidence(get_state(), target, delivered) is Applied.UNCHANGED
    earlier = Evidence(LookupOutcome.DELIVERED, AT - timedelta(minutes=1))
    assert apply_evidence(get_state(), target, earlier) is Applied.CHANGED
    assert _columns(row.id) == RowState(RecipientStatus.DELIVERED, delivered_at=earlier.at)
    assert reload(campaign).delivered_count == 1
