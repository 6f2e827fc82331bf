"""Hooks and signals for hosts that keep data of their own: `recipients_settled` (one per
settled batch, what was written) with the README's bulk-mirroring recipe, and `after_clone`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import signals
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import campaign_with, drain, emails, reload

ADDRESSES = [*emails(4), "bad@refused.example.org", "bad2@refused.example.org"]


@pytest.fixture
def settled() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **extra: Any) -> None:
        received.append({"sender": sender, **extra})

    signals.recipients_settled.connect(receiver)
    yield received
    signals.recipients_settled.disconnect(receiver)


def test_recipients_settled_carries_each_batch_outcome_once(
    make_app: Any, mailgun: Any, settled: list[dict[str, Any]]
) -> None:
    app: Flask = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        mailgun.add_fault(FaultRule(match=r"@refused\.example\.org$", reject_addresses=True))
        campaign = campaign_with(ADDRESSES)
        hostapp.retry.send(campaign)
        drain(app)
        attempt_id = reload(campaign).current_attempt_id
    assert len(settled) == 3  # three batches of two
    assert all(event["sender"] is app for event in settled)
    assert {event["campaign_id"] for event in settled} == {campaign.id}
    assert {event["attempt_id"] for event in settled} == {attempt_id}
    assert len({event["batch_id"] for event in settled}) == 3
    outcomes = {o.email: o for event in settled for o in event["outcomes"]}
    assert sorted(outcomes) == sorted(ADDRESSES)
    assert {e: outcomes[e].status for e in emails(4)} == dict.fromkeys(emails(4), "SENT")
    for bad in ADDRESSES[4:]:
        failed = outcomes[bad]
        assert (failed.status, failed.failure_kind, failed.error_code) == (
            "FAILED",
            "permanent",
            400,
        )
        assert "not a valid address" in (failed.error_message or "")


def test_deferred_recipients_are_announced_when_they_settle_not_before(
    make_app: Any, mailgun: Any, settled: list[dict[str, Any]]
) -> None:
    app: Flask = make_app(CAMPAIGN_RETRY_BATCH_SIZE=10)
    with app.app_context():
        mailgun.add_fault(FaultRule(status=500, times=1))
        campaign = campaign_with(emails(3))
        hostapp.retry.send(campaign)
        drain(app, until=lambda: reload(campaign).status.value == "SENT")
    assert len(settled) == 1  # the first try settled nobody: all three were deferred
    assert [(o.email, o.status) for o in settled[0]["outcomes"]] == [
        (email, "SENT") for email in emails(3)
    ]


def test_the_readme_recipe_mirrors_outcomes_into_the_hosts_own_rows(
    make_app: Any, mailgun: Any
) -> None:
    """The host keeps a row per recipient with its own status and updates it in one
    executemany per batch, as the README shows."""
    metadata = sa.MetaData()
    host_email = sa.Table(
        "host_email",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, default="queued"),
        sa.Column("reason", sa.Text),
    )

    def mirror(sender: Any, campaign_id: Any, outcomes: list[Any], **extra: Any) -> None:
        db = hostapp.db
        db.session.execute(
            sa.update(host_email)
            .where(
                host_email.c.campaign_id == campaign_id,
                host_email.c.address == sa.bindparam("b_address"),
            )
            .values(state=sa.bindparam("b_state"), reason=sa.bindparam("b_reason")),
            [
                {"b_address": o.email, "b_state": o.status.lower(), "b_reason": o.error_message}
                for o in outcomes
            ],
        )
        db.session.commit()

    app: Flask = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        metadata.create_all(hostapp.db.engine)
        try:
            mailgun.add_fault(FaultRule(match=r"@refused\.example\.org$", reject_addresses=True))
            campaign = campaign_with(ADDRESSES)
            hostapp.db.session.execute(
                sa.insert(host_email),
                [{"campaign_id": campaign.id, "address": a} for a in ADDRESSES],
            )
            hostapp.db.session.commit()
            with signals.recipients_settled.connected_to(mirror):
                hostapp.retry.send(campaign)
                drain(app)
            rows = hostapp.db.session.execute(
                sa.select(host_email.c.address, host_email.c.state)
            ).all()
        finally:
            hostapp.db.session.rollback()
            metadata.drop_all(hostapp.db.engine)
    assert dict(rows) == {
        **dict.fromkeys(emails(4), "sent"),
        "bad@refused.example.org": "failed",
        "bad2@refused.example.org": "failed",
    }


def test_after_clone_runs_in_the_clone_transaction_and_can_derive_its_name(
    app: Flask, mailgun: Any
) -> None:
    calls: list[tuple[Any, Any]] = []

    def copy_extras(original: Any, clone: Any) -> None:
        calls.append((original.id, clone.id))
        clone.name = f"{original.name} (copy)"

    campaign = campaign_with(emails(2))
    campaign.name = "Weekly digest #12"
    hostapp.db.session.commit()
    hostapp.retry.hooks.after_clone = copy_extras
    try:
        clone = hostapp.retry.clone(campaign)
    finally:
        hostapp.retry.hooks.after_clone = None
    assert calls == [(campaign.id, clone.id)]
    assert reload(clone).name == "Weekly digest #12 (copy)"
    assert reload(campaign).name == "Weekly digest #12"


def test_a_raising_after_clone_leaves_no_clone(app: Flask) -> None:
    def broken(original: Any, clone: Any) -> None:
        raise RuntimeError("attachments store is down")

    campaign = campaign_with(emails(2))
    model = get_state().models.campaign
    before = hostapp.db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar()
    hostapp.retry.hooks.after_clone = broken
    try:
        with pytest.raises(RuntimeError, match="attachments store is down"):
            hostapp.retry.clone(campaign)
    finally:
        hostapp.retry.hooks.after_clone = None
    after = hostapp.db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar()
    assert after == before


def test_after_clone_decorator_returns_the_function() -> None:
    def hook(original: Any, clone: Any) -> None:
        return None

    saved = hostapp.retry.hooks.after_clone
    try:
        assert hostapp.retry.after_clone(hook) is hook
        assert hostapp.retry.hooks.after_clone is hook
    finally:
        hostapp.retry.hooks.after_clone = saved
