"""The clone's rules, exactly: when an only_unsent clone is refused (and with which code and
words), that other campaigns never decide it, what its pre-filled rows carry, and what the
host's hooks receive."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus, TransitionRefused
from flask_campaign_retry.campaign_fields import column_name
from flask_campaign_retry.hooks import Hooks
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import campaign_with, emails, prepare_only, recipient_rows, reload
from tests.webapp import partially_sent, set_columns

NOTHING_UNSENT = (
    "nothing_unsent",
    "Every recipient of this campaign received it (or was skipped): there is nobody to clone "
    "for. Clone without only_unsent to copy the content.",
)
WHILE_SENDING = (
    "clone_while_sending",
    "The campaign is sending: who did not get it is known only when the attempt ends. Clone "
    "with only_unsent once it has finished.",
)


def _refused(campaign: Any) -> tuple[str, str]:
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.clone(reload(campaign), only_unsent=True)
    hostapp.db.session.rollback()
    return refused.value.code, refused.value.reason


def _mark_all(campaign: Any, status: str) -> None:
    table = get_state().models.recipient.__table__
    hostapp.db.session.execute(
        sa.update(table).where(table.c.campaign_id == campaign.id).values(status=status)
    )
    hostapp.db.session.commit()


def _campaign_count() -> int:
    return int(hostapp.db.session.query(hostapp.Campaign).count())


def test_refusals_say_why_and_other_campaigns_never_decide(web_app: Flask, mailgun: Any) -> None:
    received = partially_sent(web_app, mailgun)
    _mark_all(received, "SENT")
    sending = campaign_with(emails(3, prefix="busy"), list_name="busy")
    prepare_only(web_app, sending)  # SENDING, its rows PENDING: not the first campaign's business
    count = _campaign_count()
    assert _refused(received) == NOTHING_UNSENT
    assert _refused(sending) == WHILE_SENDING
    assert _campaign_count() == count
    _mark_all(received, "FAILED")
    copy = hostapp.retry.clone(reload(received), only_unsent=True)
    assert (copy.status, copy.total_recipients) == (EmailStatus.DRAFT, 6)


def test_pre_filled_rows_start_fresh(web_app: Flask, mailgun: Any) -> None:
    """The original's rows were submitted before; the clone's have never been."""
    campaign = partially_sent(web_app, mailgun)
    copy = hostapp.retry.clone(reload(campaign), only_unsent=True)
    rows = recipient_rows(copy)
    assert sorted(rows) == ["main000000@example.com", "main000001@example.com"]
    assert {(r.status.value, r.submissions, r.batch_id) for r in rows.values()} == {
        ("PENDING", 0, None)
    }
    assert {r.submissions for r in recipient_rows(campaign).values()} == {1}


def test_hooks_receive_the_original_and_the_clone(
    web_app: Flask, mailgun: Any, hooks: Hooks
) -> None:
    seen: list[tuple[str, Any, Any]] = []
    retry_count = column_name(hostapp.Campaign, "retry_count")

    def clone_fields(campaign: Any) -> list[str]:
        seen.append(("clone_fields", campaign.id, None))
        return ["name", "list_name", retry_count]  # a mixin column is never copied

    hooks.clone_fields = clone_fields
    hooks.after_clone = lambda original, clone: seen.append(("after_clone", original.id, clone.id))
    campaign = set_columns(partially_sent(web_app, mailgun), retry_count=2, name="Weekly")
    copy = hostapp.retry.clone(campaign)
    assert seen == [("clone_fields", campaign.id, None), ("after_clone", campaign.id, copy.id)]
    copy = reload(copy)
    assert (copy.name, copy.retry_count, copy.status) == ("Weekly", 0, EmailStatus.DRAFT)
