"""``flask campaign-retry``: the same operations as the routes, from a terminal."""

from __future__ import annotations

import getpass
import json
from typing import Any

from flask import Flask

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.state import get_state
from flask_campaign_retry.web.report import delivery_report
from tests import hostapp
from tests.helpers import attempts, reload, status_counts
from tests.webapp import (
    draft,
    partially_sent,
    sent_with_faults,
)


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["campaign-retry", *args])


def test_status_prints_a_summary_and_json(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    result = run(web_app, "status", str(campaign.id))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Campaign {campaign.id}: PARTIALLY_SENT"
    assert lines[1] == "4 of 6 emails sent successfully (0 confirmed delivered)"
    assert "Recipients: SENT 4, FAILED 2" in lines
    deadline = delivery_report(get_state(), campaign)["retry"]["deadline"]
    assert f"Retry: possible until {deadline}, 3 attempts left, 2 recipients to retry" in lines
    assert lines[-1].startswith("  attempt 1 (initial) ")
    assert lines[-1].endswith("PARTIALLY_SENT; 4 sent, 2 failed, 0 unknown, 0 skipped")

    as_json = run(web_app, "status", str(campaign.id), "--json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.output) == delivery_report(get_state(), campaign)


def test_retry_records_the_cli_user_and_refuses_a_second_one(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    started = run(web_app, "retry", str(campaign.id))
    assert started.exit_code == 0
    assert started.output == f"Retry started: campaign {campaign.id}, attempt 2.\n"
    assert attempts(campaign)[1].triggered_by == f"cli:{getpass.getuser()}"
    again = run(web_app, "retry", str(campaign.id), "--include-uncertain")
    assert again.exit_code == 1
    assert "Error: The campaign is already sending." in again.output


def test_send_then_a_burst_worker_delivers_everything(web_app: Flask, mailgun: Any) -> None:
    campaign = draft()
    sent = run(web_app, "send", str(campaign.id))
    assert sent.exit_code == 0
    assert sent.output == f"Sending started: campaign {campaign.id}, attempt 1.\n"
    worked = run(web_app, "worker", "--burst", "--simple", "--name", "cli-test-worker")
    assert worked.exit_code == 0, worked.output
    assert reload(campaign).status is EmailStatus.SENT
    assert len(mailgun.accepted_emails()) == 6


def test_clone_only_unsent_and_its_refusal(web_app: Flask, mailgun: Any) -> None:
    campaign = partially_sent(web_app, mailgun)
    result = run(web_app, "clone", str(campaign.id), "--only-unsent")
    assert result.exit_code == 0
    copy_id = int(result.output.split("into draft ")[1].split(" ")[0])
    assert result.output.endswith("with 2 recipients.\n")
    copy = hostapp.db.session.get(hostapp.Campaign, copy_id)
    assert copy.cloned_from_id == campaign.id
    assert status_counts(copy) == {"PENDING": 2}

    done = sent_with_faults(web_app, mailgun, [])
    refused = run(web_app, "clone", str(done.id), "--only-unsent")
    assert refused.exit_code == 1
    assert "Every recipient of this campaign received it" in refused.output


def test_unknown_ids_are_errors(web_app: Flask) -> None:
    for command in ("status", "send", "retry", "clone"):
        result = run(web_app, command, "abc")
        assert result.exit_code == 1
        assert "Error: There is no campaign with id 'abc': campaign ids are whole numbers" in (
            result.output
        )
