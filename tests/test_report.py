"""The delivery report (JSON route, panel and CLI all render it) and the failed-recipient
pages: exact contents, grouping, keyset paging, and a statement count that does not grow
with the campaign."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from flask_campaign_retry.web.report import (
    MAX_PAGE_SIZE,
    delivery_report,
    failed_recipients_page,
    failure_groups,
)
from tests import hostapp
from tests.helpers import drain, reload
from tests.webapp import (
    failed,
    partially_sent,
    sent_with_faults,
)

MESSAGE_500 = "HTTP 500 from Mailgun: Internal Server Error"


def test_report_of_a_partially_sent_campaign(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    report = delivery_report(get_state(), campaign)
    failed_at = campaign.failed_at.isoformat(timespec="seconds") + "Z"
    deadline = (campaign.failed_at + timedelta(hours=24)).isoformat(timespec="seconds") + "Z"
    [attempt] = report.pop("attempts")
    assert report == {
        "id": campaign.id,
        "status": "PARTIALLY_SENT",
        "total_recipients": 6,
        "successful_sends": 4,
        "accepted": 4,
        "delivered_count": 0,
        "recipients": {
            "PENDING": 0,
            "SENDING": 0,
            "SENT": 4,
            "DELIVERED": 0,
            "FAILED": 2,
            "UNCERTAIN": 0,
            "SKIPPED": 0,
        },
        "failure_reason": campaign.failure_reason,
        "failed_at": failed_at,
        "retry_count": 0,
        "max_retries": 3,
        "retry": {
            "allowed": True,
            "code": None,
            "reason": None,
            "deadline": deadline,
            "attempts_left": 3,
            "retryable": 2,
            "uncertain": 0,
        },
        "next_auto_retry_at": None,
        "scheduled_at": None,
        "last_attempt_at": failed_at,
        "cloned_from_id": None,
        "failures": {
            "groups": [
                {
                    "failure_kind": "transient",
                    "error_code": 500,
                    "error_message": MESSAGE_500,
                    "count": 2,
                }
            ],
            "other": 0,
        },
    }
    assert campaign.failure_reason.startswith("2 of 6 recipients did not get the email")
    assert {key: attempt[key] for key in ("number", "trigger", "targeted", "sent", "failed")} == {
        "number": 1,
        "trigger": "initial",
        "targeted": 6,
        "sent": 4,
        "failed": 2,
    }
    assert attempt["outcome"] == "PARTIALLY_SENT"
    assert attempt["providers"] == {"mailgun": 3}  # which provider carried its 3 batches
    assert attempt["started_at"].endswith("Z") and attempt["ended_at"].endswith("Z")


def test_delivery_route_serves_the_report_and_the_attempt_history_grows(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = partially_sent(web_app, mailgun)
    hostapp.retry.retry(campaign, triggered_by="alice")
    drain(web_app)
    campaign = reload(campaign)
    body = client.get(f"/campaigns/{campaign.id}/delivery").get_json()
    assert body == delivery_report(get_state(), campaign)
    assert body["status"] == "SENT" and body["failed_at"] is None
    assert body["retry"]["code"] == "not_retryable_status"
    assert [
        (a["number"], a["trigger"], a["triggered_by"], a["outcome"]) for a in body["attempts"]
    ] == [
        (1, "initial", None, "PARTIALLY_SENT"),
        (2, "manual", "alice", "SENT"),
    ]


def test_failure_groups_are_largest_first_and_capped(web_app: Flask, mailgun: Any) -> None:
    campaign = failed(web_app, mailgun)
    recipients = get_state().models.recipient.__table__
    r = recipients.c
    # Rewrite the six identical failures into groups of 3, 2 and 1.
    for emails, message in (
        (["main000000@example.com", "main000001@example.com", "main000002@example.com"], "A"),
        (["main000003@example.com", "main000004@example.com"], "B"),
        (["main000005@example.com"], "C"),
    ):
        hostapp.db.session.execute(
            sa.update(recipients)
            .where(r.campaign_id == campaign.id, r.email.in_(emails))
            .values(error_message=message)
        )
    hostapp.db.session.commit()
    everything = failure_groups(get_state(), campaign.id)
    assert [(g["error_message"], g["count"]) for g in everything["groups"]] == [
        ("A", 3),
        ("B", 2),
        ("C", 1),
    ]
    assert everything["other"] == 0
    capped = failure_groups(get_state(), campaign.id, limit=2)
    assert [g["error_message"] for g in capped["groups"]] == ["A", "B"]
    assert capped["other"] == 1


def test_failed_recipient_pages_are_keyset_and_bounded(web_app: Flask, mailgun: Any) -> None:
    campaign = sent_with_faults(
        web_app, mailgun, [FaultRule(status=500, match=r"main00000[0-5]@")], n=9
    )
    state = get_state()
    pages, after = [], None
    while True:
        page = failed_recipients_page(state, campaign, after=after, limit=2)
        pages.append([item["email"] for item in page.items])
        after = page.next_after
        if after is None:
            break
    assert pages == [
        ["main000000@example.com", "main000001@example.com"],
        ["main000002@example.com", "main000003@example.com"],
        ["main000004@example.com", "main000005@example.com"],  # a full last page, no cursor
    ]
    item = failed_recipients_page(state, campaign, limit=1).items[0]
    assert item == {
        "id": item["id"],
        "email": "main000000@example.com",
        "status": "FAILED",
        "failure_kind": "transient",
        "error_code": 500,
        "error_message": MESSAGE_500,
        "submissions": 1,
    }
    assert len(failed_recipients_page(state, campaign, limit=0).items) == 1
    assert len(failed_recipients_page(state, campaign, limit=10**9).items) == 6 <= MAX_PAGE_SIZE
    assert failed_recipients_page(state, campaign, after=2**62).items == []


@contextmanager
def count_statements() -> Iterator[list[str]]:
    engine = hostapp.db.engine
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_report_statement_count_does_not_grow_with_the_campaign(
    web_app: Flask, mailgun: Any
) -> None:
    small = failed(web_app, mailgun)
    large = sent_with_faults(web_app, mailgun, [FaultRule(status=500)], n=40)
    counts = []
    for campaign in (small, large):
        hostapp.db.session.refresh(campaign)  # loaded: only the report's own queries count
        with count_statements() as statements:
            delivery_report(get_state(), campaign)
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 8
