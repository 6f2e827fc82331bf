"""Scheduled sends: on time through a real RQ worker, cancel and reschedule atomic against the
start, overdue campaigns after downtime, and every bad time refused with a clear reason."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_campaign_retry import EmailStatus, InvalidScheduleTime, TransitionRefused
from flask_campaign_retry.campaign_fields import columns
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.scheduling import parse_when, start_due
from flask_campaign_retry.recovery.sweep import recover
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, drain, emails, kill_worker, reload, start_worker
from tests.test_panel import render
from tests.webapp import (
    csrf_token,
    draft,
    flashes,
    json_headers,
    partially_sent,
    set_columns,
)


def scheduled(campaign: Any, at: datetime) -> Any:
    """Put ``campaign`` in SCHEDULED at ``at`` directly (as if its start job were lost)."""
    return set_columns(campaign, status=EmailStatus.SCHEDULED, scheduled_at=at)


def test_scheduled_campaign_starts_on_time_with_a_real_worker(make_app: Any, mailgun: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=3)
    with app.app_context():
        addresses = emails(7, prefix="sched")
        hostapp.add_subscribers("s", addresses)
        campaign = hostapp.new_campaign("s")
        at = utcnow().replace(microsecond=0) + timedelta(seconds=3)
        stored = hostapp.retry.schedule(campaign, at.replace(tzinfo=UTC))
        assert stored == at
        campaign = reload(campaign)
        assert (campaign.status, campaign.scheduled_at) == (EmailStatus.SCHEDULED, at)
        assert attempts(campaign) == []
        worker = start_worker(app)
        try:
            deadline = time.monotonic() + 60
            while reload(campaign).status is not EmailStatus.SENT:
                hostapp.db.session.rollback()
                assert time.monotonic() < deadline, f"still {reload(campaign).status}"
                time.sleep(0.3)
        finally:
            kill_worker(worker)
        [attempt] = attempts(campaign)
        assert attempt.triggered_by == "scheduler"
        assert attempt.started_at >= at  # never before its time
        assert mailgun.accepted_emails() == {address: 1 for address in addresses}


def test_reschedule_later_leaves_the_old_job_harmless(app: Flask, mailgun: Any) -> None:
    campaign = draft(3)
    now = utcnow()
    first = now + timedelta(minutes=5)
    later = now + timedelta(minutes=50)
    hostapp.retry.schedule(campaign, first)
    hostapp.retry.schedule(campaign, later)  # reschedule: only the time moves
    state = get_state()
    # The job for the first time runs: not due any more, nothing is started.
    assert start_due(state, campaign.id, first + timedelta(seconds=1)) == "not due"
    assert reload(campaign).status is EmailStatus.SCHEDULED and attempts(campaign) == []
    assert start_due(state, campaign.id, later + timedelta(seconds=1)) == "started"
    assert start_due(state, campaign.id, later + timedelta(seconds=2)) == "not scheduled"
    assert reload(campaign).status is EmailStatus.SENDING
    assert len(attempts(campaign)) == 1


def test_a_cancelled_campaign_is_never_started(app: Flask, mailgun: Any) -> None:
    campaign = draft(3)
    at = utcnow() + timedelta(minutes=5)
    hostapp.retry.schedule(campaign, at)
    hostapp.retry.cancel_schedule(campaign)
    campaign = reload(campaign)
    assert (campaign.status, campaign.scheduled_at) == (EmailStatus.DRAFT, None)
    assert start_due(get_state(), campaign.id, at + timedelta(seconds=1)) == "not scheduled"
    assert reload(campaign).status is EmailStatus.DRAFT and attempts(campaign) == []
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.cancel_schedule(campaign)
    assert refused.value.code == "not_scheduled"


def race(
    app: Flask, campaign_id: int, cancel_delay: float, move_to: datetime | None = None
) -> dict[str, str]:
    """The start job and a cancel (or, with ``move_to``, a reschedule), released together from
    two threads (two connections); the other action first waits ``cancel_delay`` seconds in the
    database, so both orders happen."""
    barrier = threading.Barrier(2)
    result: dict[str, str] = {}

    def start() -> None:
        with app.app_context():
            barrier.wait()
            result["start"] = start_due(get_state(), campaign_id)
            hostapp.db.session.remove()

    def cancel() -> None:
        with app.app_context():
            campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
            barrier.wait()
            hostapp.db.session.execute(sa.text("SELECT pg_sleep(:s)"), {"s": cancel_delay})
            try:
                if move_to is None:
                    hostapp.retry.cancel_schedule(campaign)
                    result["cancel"] = "cancelled"
                else:
                    hostapp.retry.schedule(campaign, move_to)
                    result["cancel"] = "rescheduled"
            except TransitionRefused as exc:
                result["cancel"] = exc.code
            hostapp.db.session.remove()

    threads = [threading.Thread(target=start), threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return result


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_cancel_racing_the_start_exactly_one_wins(make_app: Any, mailgun: Any) -> None:
    app = make_app()
    outcomes: list[str] = []
    with app.app_context():
        hostapp.add_subscribers("race", emails(2, prefix="race"))
        due = utcnow() - timedelta(seconds=1)
        ids = []
        for _ in range(15):
            campaign = scheduled(hostapp.new_campaign("race"), due)
            ids.append(campaign.id)
    for i, campaign_id in enumerate(ids):
        result = race(app, campaign_id, 0.0 if i % 2 else 0.05)
        with app.app_context():
            campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
            n = len(attempts(campaign))
            if result["start"] == "started":
                assert result["cancel"] == "already_started"
                assert (campaign.status, n) == (EmailStatus.SENDING, 1)
            else:
                assert result["start"] in ("lost the race", "not scheduled")
                assert result["cancel"] == "cancelled"
                assert (campaign.status, n) == (EmailStatus.DRAFT, 0)
            outcomes.append(result["start"])
    assert len(outcomes) == 15


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_reschedule_racing_the_start_exactly_one_wins(make_app: Any, mailgun: Any) -> None:
    app = make_app()
    later = utcnow().replace(microsecond=0) + timedelta(days=1)
    with app.app_context():
        hostapp.add_subscribers("move", emails(2, prefix="move"))
        due = utcnow() - timedelta(seconds=1)
        ids = [scheduled(hostapp.new_campaign("move"), due).id for _ in range(10)]
    for i, campaign_id in enumerate(ids):
        result = race(app, campaign_id, 0.0 if i % 2 else 0.05, move_to=later)
        with app.app_context():
            campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
            n = len(attempts(campaign))
            if result["start"] == "started":
                assert result["cancel"] == "not_schedulable"
                assert (campaign.status, n) == (EmailStatus.SENDING, 1)
            else:
                assert result["cancel"] == "rescheduled"
                assert (campaign.status, campaign.scheduled_at, n) == (
                    EmailStatus.SCHEDULED,
                    later,
                    0,
                )


def test_cancel_after_the_start_is_refused(app: Flask, mailgun: Any) -> None:
    campaign = scheduled(draft(2), utcnow() - timedelta(seconds=1))
    assert start_due(get_state(), campaign.id) == "started"
    with pytest.raises(TransitionRefused) as refused:
        hostapp.retry.cancel_schedule(reload(campaign))
    assert refused.value.code == "already_started"
    assert "its scheduled start already happened" in refused.value.reason
    assert reload(campaign).status is EmailStatus.SENDING


def test_overdue_after_downtime_within_grace_started_beyond_held(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_SCHEDULE_GRACE=timedelta(hours=1))
    with app.app_context():
        now = utcnow()
        hostapp.add_subscribers("late", emails(3, prefix="late"))
        hostapp.add_subscribers("old", emails(3, prefix="old"))
        late = scheduled(hostapp.new_campaign("late"), now - timedelta(minutes=20))
        old = scheduled(hostapp.new_campaign("old"), now - timedelta(hours=3))
        report = recover(now)
        assert report.started_scheduled == [late.id]
        assert report.held_scheduled == [old.id]
        drain(app)
        assert reload(late).status is EmailStatus.SENT
        old = reload(old)
        assert old.status is EmailStatus.SCHEDULED
        assert old.failure_reason is not None
        assert old.failure_reason.startswith(
            f"Not started: it was due at {now - timedelta(hours=3):%Y-%m-%d %H:%M:%S} UTC"
        )
        assert "CAMPAIGN_RETRY_SCHEDULE_GRACE" in old.failure_reason
        assert attempts(old) == []
        assert set(mailgun.accepted_emails()) == set(emails(3, prefix="late"))
        # A second sweep changes nothing; sending it by hand still works.
        again = recover(utcnow())
        assert (again.started_scheduled, again.held_scheduled) == ([], [])
        hostapp.retry.send(old)
        drain(app)
        assert reload(old).status is EmailStatus.SENT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-12-24 09:00", "has no time zone; add 'Z' for UTC"),
        ("next tuesday", "is not an ISO 8601 time"),
        ("", "Give the time to send at"),
    ],
)
def test_parse_when_refuses_unclear_times(text: str, message: str) -> None:
    with pytest.raises(InvalidScheduleTime) as error:
        parse_when(text)
    assert message in str(error.value)


def test_parse_when_converts_offsets_to_utc() -> None:
    assert parse_when("2026-12-24T10:30:00+01:00") == datetime(2026, 12, 24, 9, 30)
    assert parse_when("2026-12-24T09:30:00Z") == datetime(2026, 12, 24, 9, 30)


def test_a_past_time_is_refused_and_nothing_changes(app: Flask, mailgun: Any) -> None:
    campaign = draft(2)
    past = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(InvalidScheduleTime) as error:
        hostapp.retry.schedule(campaign, past)
    assert "is in the past" in str(error.value)
    assert reload(campaign).status is EmailStatus.DRAFT


def test_schedule_route_checks_in_order_and_schedules(
    web_app: Flask, client: FlaskClient, mailgun: Any, authorize: Any
) -> None:
    campaign = draft(2)
    url = f"/campaigns/{campaign.id}/schedule"
    at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    body = {"at": at.isoformat() + "Z"}
    assert client.post(url, json=body).status_code == 400  # no CSRF token
    assert (
        client.post(
            "/campaigns/999999/schedule", json=body, headers=json_headers(client)
        ).status_code
        == 404
    )
    authorize(lambda c, action: action != "send")
    assert client.post(url, json=body, headers=json_headers(client)).status_code == 403
    authorize(lambda c, action: True)
    bad = client.post(url, json={"at": "2026-12-24 09:00"}, headers=json_headers(client))
    assert bad.status_code == 400
    assert "has no time zone" in bad.get_json()["reason"]
    ok = client.post(url, json=body, headers=json_headers(client))
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["scheduled_at"] == at.isoformat() + "Z"
    assert reload(campaign).status is EmailStatus.SCHEDULED
    page = render(client, campaign)
    assert f"Scheduled for {at:%Y-%m-%d %H:%M} UTC." in page.text
    assert page.button("cr-button--cancel-schedule") is not None
    [form] = [f for f in page.forms if f["action"].endswith("/schedule")]
    assert form["fields"]["cancel"] == "true"
    cancelled = client.post(form["action"], data=form["fields"])
    assert cancelled.status_code == 303
    assert reload(campaign).status is EmailStatus.DRAFT
    cancel_again = client.post(url, json={"cancel": True}, headers=json_headers(client))
    assert (cancel_again.status_code, cancel_again.get_json()["code"]) == (409, "not_scheduled")


def test_schedule_route_form_field_at_utc_and_409_for_a_sent_campaign(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    campaign = draft(2)
    at = (utcnow() + timedelta(days=1)).replace(second=0, microsecond=0)
    response = client.post(
        f"/campaigns/{campaign.id}/schedule",
        data={"csrf_token": csrf_token(client), "at_utc": at.strftime("%Y-%m-%dT%H:%M")},
    )
    assert response.status_code == 303
    assert reload(campaign).scheduled_at == at
    # A past time from the form: back to the page with the reason, nothing changed.
    past = client.post(
        f"/campaigns/{campaign.id}/schedule",
        data={"csrf_token": csrf_token(client), "at_utc": "2001-01-01T09:00", "next": "/back"},
    )
    assert (past.status_code, past.headers["Location"]) == (303, "/back")
    [(category, message)] = flashes(client)[-1:]
    assert category == "error" and "2001-01-01 09:00:00 UTC is in the past" in message
    assert reload(campaign).scheduled_at == at
    done = partially_sent(web_app, mailgun)
    refused = client.post(
        f"/campaigns/{done.id}/schedule",
        json={"at": at.isoformat() + "Z"},
        headers=json_headers(client),
    )
    assert (refused.status_code, refused.get_json()["code"]) == (409, "not_schedulable")
    # The time is checked first (fields before the action): a bad time is a 400 even here.
    bad = client.post(
        f"/campaigns/{done.id}/schedule", json={"at": "x"}, headers=json_headers(client)
    )
    assert bad.status_code == 400


def test_cli_schedule_and_cancel(web_app: Flask, mailgun: Any) -> None:
    campaign = draft(2)
    runner = web_app.test_cli_runner()
    at = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    result = runner.invoke(
        args=["campaign-retry", "schedule", str(campaign.id), at.isoformat() + "Z"]
    )
    assert result.exit_code == 0, result.output
    assert f"scheduled for {at.isoformat()}Z" in result.output
    assert reload(campaign).scheduled_at == at
    status = runner.invoke(args=["campaign-retry", "status", str(campaign.id)])
    assert f"Scheduled for: {at.isoformat()}Z" in status.output.splitlines()
    bad = runner.invoke(args=["campaign-retry", "schedule", str(campaign.id), "tomorrow"])
    assert bad.exit_code == 1 and "is not an ISO 8601 time" in bad.output
    result = runner.invoke(args=["campaign-retry", "schedule", str(campaign.id), "--cancel"])
    assert result.exit_code == 0, result.output
    assert reload(campaign).status is EmailStatus.DRAFT


def test_scheduled_at_column_is_nullable_for_existing_rows(app: Flask) -> None:
    column = columns(get_state().models.campaign.__table__).scheduled_at
    assert column.nullable and isinstance(column.type, sa.DateTime)
