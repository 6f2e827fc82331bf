"""With no Redis configured, the extension still sends, on the same RQ code path: fakeredis's
TCP server, an RQ worker thread and RQ's scheduler thread inside this process."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.queue import embedded
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import campaign_with, emails, reload


def _wait_until_settled(campaign: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        current = reload(campaign)
        hostapp.db.session.rollback()
        if current.status is not EmailStatus.SENDING and current.next_auto_retry_at is None:
            return current
        assert time.monotonic() < deadline, "the embedded worker did not finish"
        time.sleep(0.1)


def test_the_embedded_queue_sends_and_runs_scheduled_retries(
    make_app: Any, mailgun: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_campaign_retry")
    embedded._warned.clear()  # as in a fresh process
    app: Flask = make_app(CAMPAIGN_RETRY_REDIS_URL=None, CAMPAIGN_RETRY_BATCH_SIZE=10)
    with app.app_context():
        # A 429 with a resume time makes the batch wait for RQ's scheduler.
        mailgun.add_fault(FaultRule(status=429, resume_in=1, times=1))
        addresses = emails(25)
        campaign = campaign_with(addresses)
        hostapp.retry.send(campaign)
        # The development-only warning comes when the queue starts, not at init_app.
        assert any("embedded in-process queue" in r.getMessage() for r in caplog.records)
        state = get_state()
        assert state.embedded is not None
        assert state.embedded.url.startswith("redis://127.0.0.1:")
        campaign = _wait_until_settled(campaign)
        assert campaign.status is EmailStatus.SENT
        assert mailgun.accepted_emails() == {address: 1 for address in addresses}
        assert mailgun.request_count == 4  # the 429, then three accepted batches
        state.embedded.stop()
        assert not any(thread.is_alive() for thread in state.embedded.threads)
