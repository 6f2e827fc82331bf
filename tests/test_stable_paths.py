"""Names that outlive the package layout: RQ job paths already sitting in a user's Redis when
they upgrade, and the public names the README documents."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from rq.utils import import_attribute

import flask_campaign_retry
from flask_campaign_retry.queue import names
from flask_campaign_retry.state import get_state
from flask_campaign_retry.statuses import EmailStatus, RecipientStatus
from tests import hostapp
from tests.helpers import campaign_with, drain, emails, recipient_rows, reload

#: The job paths 0.1 wrote into Redis. Literal on purpose: a rename must break this test.
LEGACY_JOB_PATHS = {
    "flask_campaign_retry.jobs.prepare_attempt",
    "flask_campaign_retry.jobs.send_batch",
    "flask_campaign_retry.jobs.auto_retry_campaign",
    "flask_campaign_retry.jobs.recover",
    "flask_campaign_retry.webhook_delivery.deliver",
}


@pytest.mark.parametrize("path", sorted(LEGACY_JOB_PATHS))
def test_every_legacy_job_path_still_resolves_to_a_function(path: str) -> None:
    assert callable(import_attribute(path))


def test_new_jobs_are_enqueued_under_the_stable_jobs_module() -> None:
    enqueued = {
        names.PREPARE_JOB,
        names.BATCH_JOB,
        names.AUTO_RETRY_JOB,
        names.RECOVERY_JOB,
        names.ALERT_JOB,
    }
    assert all(path.startswith("flask_campaign_retry.jobs.") for path in enqueued)
    assert enqueued - {names.ALERT_JOB} <= LEGACY_JOB_PATHS


def test_a_campaign_whose_jobs_were_queued_by_old_dotted_paths_is_sent(app: Flask) -> None:
    """Jobs enqueued by their literal 0.1 paths (not through the package's constants) run."""
    campaign = campaign_with(emails(5))
    state = get_state()
    # Start the send without its own enqueue, as a 0.1 web process would have left it.
    attempt = state.extension.send(campaign)
    queue = state.queue(app).queue
    queue.empty()
    queue.enqueue("flask_campaign_retry.jobs.prepare_attempt", attempt.id)
    drain(app, until=lambda: reload(campaign).status is EmailStatus.SENT)
    rows = recipient_rows(campaign)
    assert sorted(rows) == emails(5)
    assert {row.status for row in rows.values()} == {RecipientStatus.SENT}


def test_readme_names_import_from_the_package_root() -> None:
    public: dict[str, Any] = vars(flask_campaign_retry)
    for name in (
        "CampaignRetry",
        "CampaignMixin",
        "OutgoingMessage",
        "EmailStatus",
        "RecipientStatus",
        "verify_signature",
        "signals",
    ):
        assert name in public, name
    assert hostapp.retry.__class__ is flask_campaign_retry.CampaignRetry
