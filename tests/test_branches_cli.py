"""The `flask campaign-retry` commands' paths no other test takes: a well-formed id with no
campaign, the planned automatic retry in `status`, `schedule` given both or neither of a time
and --cancel, `recover` without Redis, and the sweep a `worker` runs first when it finds work."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.campaign_fields import column_values
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import EmailStatus
from tests import hostapp
from tests.helpers import attempts, campaign_with, drain, emails, reload

EMPTY_REPORT = {
    "expired_batches": [],
    "reconciled": {},
    "finalized_attempts": [],
    "requeued_batches": [],
    "requeued_attempts": [],
    "requeued_auto_retries": [],
    "started_scheduled": [],
    "held_scheduled": [],
}


def _cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["campaign-retry", *args])


def test_a_well_formed_id_of_no_campaign_is_named_in_the_error(app: Flask) -> None:
    result = _cli(app, "status", "987654")
    assert result.exit_code == 1
    assert result.output == "Error: There is no campaign with id '987654'.\n"


def test_status_names_the_planned_automatic_retry(app: Flask) -> None:
    campaign = hostapp.new_campaign("nobody")
    table = get_state().models.campaign.__table__
    hostapp.db.session.execute(
        sa.update(table)
        .where(table.c.id == campaign.id)
        .values(
            column_values(
                table,
                status=EmailStatus.FAILED,
                next_auto_retry_at=datetime(2031, 1, 2, 3, 4, 5),
            )
        )
    )
    hostapp.db.session.commit()
    result = _cli(app, "status", str(campaign.id))
    assert result.exit_code == 0, result.output
    assert "Next automatic retry: 2031-01-02T03:04:05Z" in result.output.splitlines()
    draft = hostapp.new_campaign("nobody")
    quiet = _cli(app, "status", str(draft.id))
    assert not [line for line in quiet.output.splitlines() if "automatic retry" in line]


@pytest.mark.parametrize("extra", [[], ["2031-01-01T00:00:00Z", "--cancel"]])
def test_schedule_needs_exactly_one_of_a_time_and_cancel(app: Flask, extra: list[str]) -> None:
    campaign = hostapp.new_campaign("nobody")
    result = _cli(app, "schedule", str(campaign.id), *extra)
    assert result.exit_code == 2
    assert "Error: Give either WHEN or --cancel." in result.output
    assert reload(campaign).status is EmailStatus.DRAFT


def test_recover_without_redis_reports_an_empty_sweep(make_app: Any) -> None:
    app = make_app(CAMPAIGN_RETRY_REDIS_URL=None)
    with app.app_context():
        result = _cli(app, "recover")
    assert result.exit_code == 0, result.output
    report, _, rest = result.output.partition("\n}\n")
    assert json.loads(report + "}") == EMPTY_REPORT
    assert rest == "No CAMPAIGN_RETRY_REDIS_URL: running the requeued work in this process.\n"


def test_a_worker_prints_the_sweep_it_ran_first_when_it_found_work(app: Flask) -> None:
    """A finished send whose finalizer never ran (the worker died): `worker --burst` sweeps
    first, prints what the sweep did, and the campaign ends SENT."""
    campaign = campaign_with(emails(3))
    hostapp.retry.send(campaign)
    drain(app)
    state = get_state()
    campaigns = state.models.campaign.__table__
    hostapp.db.session.execute(
        sa.update(campaigns).values(column_values(campaigns, status=EmailStatus.SENDING))
    )
    hostapp.db.session.execute(
        sa.update(state.models.attempt.__table__).values(ended_at=None, outcome=None)
    )
    hostapp.db.session.commit()

    result = _cli(app, "worker", "--burst", "--simple")

    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("recovery: ")]
    report = json.loads(line.removeprefix("recovery: "))
    assert report == {**EMPTY_REPORT, "finalized_attempts": [attempts(campaign)[0].id]}
    assert reload(campaign).status is EmailStatus.SENT


def test_a_worker_with_nothing_to_recover_prints_no_sweep(app: Flask) -> None:
    result = _cli(app, "worker", "--burst", "--simple")
    assert result.exit_code == 0, result.output
    assert "recovery:" not in result.output
