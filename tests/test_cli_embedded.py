"""The CLI without Redis: work runs to completion in the command's own process (never into a
queue that dies with it), ``worker`` refuses with one line, the embedded queue runs the
recovery sweep, and its warning appears once per process and never for ``--help``."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.queue import embedded
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import campaign_with, emails, reload
from tests.webapp import partially_sent


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["campaign-retry", *args])


@pytest.fixture
def embedded_app(make_app: Any) -> Any:
    app: Flask = make_app(CAMPAIGN_RETRY_REDIS_URL=None, CAMPAIGN_RETRY_BATCH_SIZE=2)
    with app.app_context():
        yield app
        if get_state().embedded is not None:
            get_state().embedded.stop()


def test_send_without_redis_runs_to_completion_here_with_progress(
    embedded_app: Flask, mailgun: Any
) -> None:
    campaign = campaign_with(emails(6))
    result = run(embedded_app, "send", str(campaign.id))
    assert result.exit_code == 0, result.output
    # Done when the command returns: nothing is left in a queue that died with it.
    assert reload(campaign).status is EmailStatus.SENT
    assert mailgun.accepted_emails() == {address: 1 for address in emails(6)}
    lines = result.output.splitlines()
    assert lines[0] == f"Sending started: campaign {campaign.id}, attempt 1."
    assert lines[1] == (
        "No CAMPAIGN_RETRY_REDIS_URL: running the work in this process until it is done."
    )
    assert lines[-4] == (
        "  attempt 1: 6 of 6 recipients settled (6 sent, 0 failed, 0 unknown, 0 skipped),"
        " batches 3/3"
    )
    assert lines[-3:] == [
        f"Campaign {campaign.id}: SENT",
        "6 of 6 emails sent successfully (0 confirmed delivered)",
        "Recipients: SENT 6",
    ]
    assert get_state().embedded is None  # its queue is stopped


def test_retry_without_redis_runs_to_completion_here(
    make_app: Any, mailgun: Any, authorize: Any
) -> None:
    app: Flask = make_app(
        CAMPAIGN_RETRY_BATCH_SIZE=2,
        CAMPAIGN_RETRY_AUTO_RETRY=False,
        CAMPAIGN_RETRY_BATCH_MAX_TRIES=1,
    )
    with app.app_context():
        campaign = partially_sent(app, mailgun)  # on the real Redis
    local: Flask = make_app(CAMPAIGN_RETRY_REDIS_URL=None, CAMPAIGN_RETRY_BATCH_SIZE=2)
    with local.app_context():
        result = run(local, "retry", str(campaign.id))
        assert result.exit_code == 0, result.output
        assert reload(campaign).status is EmailStatus.SENT
        assert result.output.splitlines()[-3] == f"Campaign {campaign.id}: SENT"
        assert set(mailgun.accepted_emails().values()) == {1}


def test_worker_without_redis_exits_2_with_one_line(embedded_app: Flask) -> None:
    result = run(embedded_app, "worker", "--burst")
    assert result.exit_code == 2
    assert result.output == (
        "Error: `flask campaign-retry worker` needs Redis: set CAMPAIGN_RETRY_REDIS_URL "
        "(without it, the web process runs an embedded development queue).\n"
    )
    assert get_state().embedded is None  # nothing was started


def test_the_embedded_warning_is_logged_once_per_process_and_never_for_help(
    make_app: Any, mailgun: Any, caplog: pytest.LogCaptureFixture
) -> None:
    embedded._warned.clear()  # as in a fresh process
    caplog.set_level(logging.WARNING, logger="flask_campaign_retry")

    def warnings() -> int:
        return sum("embedded in-process queue" in r.getMessage() for r in caplog.records)

    app: Flask = make_app(CAMPAIGN_RETRY_REDIS_URL=None)
    assert run(app, "--help").exit_code == 0
    assert warnings() == 0
    with app.app_context():
        for _ in range(2):
            campaign = campaign_with(emails(2, prefix=f"w{_}"), list_name=f"w{_}")
            assert run(app, "send", str(campaign.id)).exit_code == 0
    other: Flask = make_app(CAMPAIGN_RETRY_REDIS_URL=None)
    with other.app_context():
        get_state().queue(other)
        get_state().embedded.stop()
    assert warnings() == 1


def test_the_embedded_queue_runs_the_recovery_sweep(make_app: Any, mailgun: Any) -> None:
    """A CLI process died with its queue after the send was prepared: the web process's
    embedded queue finds the QUEUED batches without a job and sends them."""
    app: Flask = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2)
    with app.app_context():
        campaign = campaign_with(emails(6))
        hostapp.retry.send(campaign)
        backend = get_state().queue(app)
        prepare = backend.queue.get_jobs()[0]
        backend.queue.remove(prepare)
        prepare.perform()
        backend.queue.empty()  # the queue died with its process
        models = get_state().models
        for table, column in ((models.batch, "created_at"), (models.attempt, "started_at")):
            t = table.__table__
            hostapp.db.session.execute(
                sa.update(t).values({column: utcnow() - timedelta(minutes=5)})
            )
        hostapp.db.session.commit()
        campaign_id = campaign.id

    web: Flask = make_app(CAMPAIGN_RETRY_REDIS_URL=None, CAMPAIGN_RETRY_BATCH_SIZE=2)
    with web.app_context():
        campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
        get_state().queue(web)  # the web process's first use starts the embedded queue
        deadline = time.monotonic() + 20
        while reload(campaign).status is EmailStatus.SENDING:
            hostapp.db.session.rollback()
            assert time.monotonic() < deadline, "the embedded queue never swept"
            time.sleep(0.1)
        assert reload(campaign).status is EmailStatus.SENT
        assert mailgun.accepted_emails() == {address: 1 for address in emails(6)}
        get_state().embedded.stop()
