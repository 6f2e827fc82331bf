"""Who a campaign reaches: never the rows a deleted campaign with the same id left behind
(issue 11.1), one email per mailbox whatever the case of the address (11.6), and no clone of
the unsent while an attempt is still deciding who that is (11.11). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_campaign_retry import EmailStatus, RecipientStatus, TransitionRefused
from flask_campaign_retry.state import get_state
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from tests import hostapp
from tests.helpers import attempts, batches, drain, emails, recipient_rows, reload
from tests.webapp import json_headers, partially_sent

DELETE_WAYS = ["orm", "bulk", "raw_sql"]


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    """No automatic retries: a partially sent campaign stays PARTIALLY_SENT."""
    app = make_app(CAMPAIGN_RETRY_AUTO_RETRY=False, CAMPAIGN_RETRY_BATCH_SIZE=2)
    with app.app_context():
        yield app


def _delete(campaign_id: int, way: str) -> None:
    session = hostapp.db.session
    if way == "orm":
        session.delete(session.get(hostapp.Campaign, campaign_id))
    elif way == "bulk":
        session.execute(sa.delete(hostapp.Campaign).where(hostapp.Campaign.id == campaign_id))
    else:
        session.execute(sa.text("DELETE FROM campaign WHERE id = :id"), {"id": campaign_id})
    session.commit()
    session.expunge_all()


def _reuse_id(old_id: int, list_name: str) -> Any:
    """A new campaign; on SQLite it gets the deleted campaign's id (the highest one is reused)."""
    campaign = hostapp.new_campaign(list_name, name="new")
    if hostapp.db.engine.dialect.name == "sqlite":
        assert campaign.id == old_id
    return campaign


@pytest.mark.parametrize("way", DELETE_WAYS)
def test_a_new_campaign_never_reaches_a_deleted_clones_prefilled_list(
    app: Flask, mailgun: FakeMailgun, way: str
) -> None:
    # A clone pre-filled with 2 unsent recipients of a partially sent original, then deleted.
    original = partially_sent(app, mailgun)
    clone = hostapp.retry.clone(original, only_unsent=True)
    assert sorted(recipient_rows(clone)) == ["main000000@example.com", "main000001@example.com"]
    clone_id = clone.id
    _delete(clone_id, way)
    hostapp.add_subscribers("fresh", ["fresh1@example.org", "fresh2@example.org"])
    mailgun.reset()

    campaign = _reuse_id(clone_id, "fresh")
    hostapp.retry.send(campaign)
    drain(app)

    assert sorted(mailgun.accepted_emails()) == ["fresh1@example.org", "fresh2@example.org"]
    assert sorted(recipient_rows(campaign)) == ["fresh1@example.org", "fresh2@example.org"]
    campaign = reload(campaign)
    assert (campaign.status, campaign.successful_sends, campaign.total_recipients) == (
        EmailStatus.SENT,
        2,
        2,
    )


@pytest.mark.parametrize("way", DELETE_WAYS)
def test_a_new_campaign_never_reaches_a_deleted_sent_campaigns_list(
    app: Flask, mailgun: FakeMailgun, way: str
) -> None:
    hostapp.add_subscribers("old", emails(3, prefix="old"))
    old = hostapp.new_campaign("old", name="old")
    hostapp.retry.send(old)
    drain(app)
    old_id = old.id
    _delete(old_id, way)
    hostapp.add_subscribers("fresh", ["fresh1@example.org", "old000000@example.com"])
    mailgun.reset()

    campaign = _reuse_id(old_id, "fresh")
    hostapp.retry.send(campaign)
    drain(app)

    # old000000 is on the new list too: it gets this campaign, once.
    assert sorted(mailgun.accepted_emails().elements()) == [
        "fresh1@example.org",
        "old000000@example.com",
    ]
    assert sorted(recipient_rows(campaign)) == ["fresh1@example.org", "old000000@example.com"]
    assert [a.number for a in attempts(campaign)] == [1]
    assert [b.size for b in batches(campaign)] == [2]
    assert reload(campaign).status is EmailStatus.SENT


def test_deleting_a_campaign_through_the_orm_deletes_its_tracking_rows(
    app: Flask, mailgun: FakeMailgun
) -> None:
    hostapp.add_subscribers("old", emails(3, prefix="old"))
    old = hostapp.new_campaign("old", name="old")
    hostapp.retry.send(old)
    drain(app)
    _delete(old.id, "orm")
    models = get_state().models
    for model in (models.recipient, models.batch, models.attempt):
        table = model.__table__
        count = hostapp.db.session.execute(sa.select(sa.func.count()).select_from(table))
        assert count.scalar_one() == 0, table.name


def test_a_clones_prefilled_list_is_still_what_it_sends(app: Flask, mailgun: FakeMailgun) -> None:
    original = partially_sent(app, mailgun)
    clone = hostapp.retry.clone(original, only_unsent=True)
    mailgun.reset()
    hostapp.retry.send(clone)
    drain(app)
    assert sorted(mailgun.accepted_emails()) == ["main000000@example.com", "main000001@example.com"]
    assert reload(clone).status is EmailStatus.SENT


# -- case-variant duplicates (11.6) -------------------------------------------------------------

VARIANTS = ["Bob@Example.COM", "bob@example.com", "BOB@EXAMPLE.COM", "alice@example.com"]


def test_case_variants_are_one_recipient_sent_as_first_given(
    make_app: Any, mailgun: FakeMailgun
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2, CAMPAIGN_RETRY_AUTO_RETRY=False)
    with app.app_context():
        hostapp.add_subscribers("cv", VARIANTS)
        campaign = hostapp.new_campaign("cv")
        hostapp.retry.send(campaign)
        drain(app)
        assert sorted(recipient_rows(campaign)) == ["Bob@example.com", "alice@example.com"]
        assert sorted(mailgun.accepted_emails().elements()) == [
            "alice@example.com",
            "bob@example.com",
        ]
        assert [(b.size, b.sent) for b in batches(campaign)] == [(1, 1), (1, 1)]
        campaign = reload(campaign)
        assert (campaign.total_recipients, campaign.successful_sends) == (2, 2)


def test_case_sensitive_dedupe_can_be_chosen(make_app: Any, mailgun: FakeMailgun) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2, CAMPAIGN_RETRY_CASEFOLD_DEDUPE=False)
    with app.app_context():
        hostapp.add_subscribers("cv", VARIANTS)
        campaign = hostapp.new_campaign("cv")
        hostapp.retry.send(campaign)
        drain(app)
        assert sorted(recipient_rows(campaign)) == [
            "BOB@example.com",
            "Bob@example.com",
            "alice@example.com",
            "bob@example.com",
        ]
        assert [b.size for b in batches(campaign)] == [2, 2]


def test_the_dedupe_switch_is_validated(make_app: Any) -> None:
    from flask_campaign_retry import ConfigurationError

    with pytest.raises(ConfigurationError, match="CAMPAIGN_RETRY_CASEFOLD_DEDUPE"):
        make_app(CAMPAIGN_RETRY_CASEFOLD_DEDUPE="yes")


# -- clone while sending (11.11) --------------------------------------------------------------


def test_clone_of_the_unsent_is_refused_while_a_retry_runs(
    web_app: Flask, client: FlaskClient, mailgun: FakeMailgun
) -> None:
    original = partially_sent(web_app, mailgun)
    hostapp.retry.retry(original)  # SENDING; its preparation job is still queued
    campaigns_before = hostapp.db.session.execute(
        sa.select(sa.func.count()).select_from(hostapp.Campaign)
    ).scalar_one()

    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.clone(reload(original), only_unsent=True)
    assert refused.value.code == "clone_while_sending"
    response = client.post(
        f"/campaigns/{original.id}/clone", json={"only_unsent": True}, headers=json_headers(client)
    )
    assert response.status_code == 409
    assert response.get_json()["code"] == "clone_while_sending"
    assert "sending" in response.get_json()["reason"]

    hostapp.db.session.rollback()
    campaigns_after = hostapp.db.session.execute(
        sa.select(sa.func.count()).select_from(hostapp.Campaign)
    ).scalar_one()
    assert campaigns_after == campaigns_before
    drain(web_app)
    # Once the retry has ended, the clone holds exactly who still did not get it: nobody here.
    assert reload(original).status is EmailStatus.SENT
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.clone(reload(original), only_unsent=True)
    assert refused.value.code == "nothing_unsent"
    statuses = {row.status for row in recipient_rows(original).values()}
    assert statuses == {RecipientStatus.SENT}


@pytest.mark.parametrize("way", DELETE_WAYS)
def test_a_clone_that_gets_a_deleted_campaigns_id_holds_only_its_own_list(
    app: Flask, mailgun: FakeMailgun, way: str
) -> None:
    original_id = partially_sent(app, mailgun).id  # main000000 and main000001 did not get it
    hostapp.add_subscribers("old", ["main000000@example.com", "someone@example.org"])
    old = hostapp.new_campaign("old", name="old")
    hostapp.retry.send(old)
    drain(app)
    old_id = old.id
    _delete(old_id, way)
    mailgun.reset()

    original = hostapp.db.session.get(hostapp.Campaign, original_id)
    clone = hostapp.retry.clone(original, only_unsent=True)
    if hostapp.db.engine.dialect.name == "sqlite":
        assert clone.id == old_id
    assert sorted(recipient_rows(clone)) == ["main000000@example.com", "main000001@example.com"]
    hostapp.retry.send(clone)
    drain(app)
    assert sorted(mailgun.accepted_emails().elements()) == [
        "main000000@example.com",
        "main000001@example.com",
    ]
    assert reload(clone).status is EmailStatus.SENT


def test_an_attempt_added_without_an_incarnation_gets_its_campaigns(app: Flask) -> None:
    campaign = hostapp.new_campaign("x")
    attempt = get_state().models.attempt(campaign_id=campaign.id, number=1, trigger="initial")
    hostapp.db.session.add(attempt)
    hostapp.db.session.commit()
    assert attempt.incarnation == campaign.retry_incarnation is not None
