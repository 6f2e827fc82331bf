"""Kill test: a work horse SIGKILLed in the middle of a batch chain (one job that already sent
several batches of its attempt) loses no recipient and sends none twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry import EmailStatus, RecipientStatus
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.recovery.sweep import recover
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import (
    batches,
    campaign_with,
    drain,
    emails,
    kill_worker,
    recipient_rows,
    reload,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def test_a_horse_killed_mid_chain_loses_and_duplicates_nothing(make_app: Any, mailgun: Any) -> None:
    app: Flask = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=20,
        CAMPAIGN_RETRY_LEASE_SECONDS=30,
        CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS=0,
        CAMPAIGN_RETRY_BACKOFF_BASE=0.1,
        CAMPAIGN_RETRY_BACKOFF_CAP=0.2,
    )
    with app.app_context():
        mailgun.latency = 0.3
        addresses = emails(200, prefix="chain")
        campaign = campaign_with(addresses, list_name="chain")
        hostapp.retry.send(campaign)
        queue = get_state().queue(app).queue
        prepare = queue.get_jobs()[0]
        queue.remove(prepare)
        prepare.perform()  # the 10 batch jobs are now queued

        worker = start_worker(app)
        wait_for(lambda: mailgun.request_count >= 4, 60, "four provider calls")
        # One job has sent four batches: no batch job has finished yet.
        finished = queue.finished_job_registry.get_job_ids()
        killed = kill_worker(worker)
        assert len(killed) >= 2, "the work horse was running"
        assert finished == []
        in_flight = [b for b in batches(campaign) if b.status == "SENDING"]
        assert len(in_flight) == 1
        assert sum(b.status == "DONE" for b in batches(campaign)) >= 3

        mailgun.latency = 0.0
        drain(app)  # the batches the chain had not reached, through their own jobs
        for _ in range(2):
            recover(now=utcnow() + timedelta(seconds=31))
            drain(
                app,
                until=lambda: (
                    (c := reload(campaign)).status is not EmailStatus.SENDING
                    and c.next_auto_retry_at is None
                ),
                timeout=60,
            )
        assert reload(campaign).status is EmailStatus.SENT
        assert mailgun.accepted_emails() == {address: 1 for address in addresses}
        rows = recipient_rows(campaign)
        assert {row.status for row in rows.values()} == {RecipientStatus.SENT}
