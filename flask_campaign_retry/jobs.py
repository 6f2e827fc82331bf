"""RQ entry points. They take ids only and run inside the app context (see ``queue``).

These dotted paths are stable across releases (``queue.names`` holds them): jobs that already
wait in a Redis when the package is upgraded still resolve.
"""

from __future__ import annotations

from flask_campaign_retry.alerts.delivery import deliver
from flask_campaign_retry.engine.batch_job import run_batch
from flask_campaign_retry.engine.refresh_job import run_refresh
from flask_campaign_retry.engine.scheduling import run_scheduled_start
from flask_campaign_retry.engine.sending import prepare_attempt as _prepare_attempt
from flask_campaign_retry.policy.auto_retry import run_auto_retry
from flask_campaign_retry.recovery.sweep import run_scheduled_recovery


def prepare_attempt(attempt_id: int, tries: int = 0) -> str:
    """Snapshot or target an attempt's recipients and enqueue its batches (``tries``: how many
    earlier runs hit a passing database fault)."""
    return _prepare_attempt(attempt_id, tries)


def send_batch(batch_id: int) -> str:
    """Claim and send one batch."""
    return run_batch(batch_id)


def auto_retry_campaign(campaign_id: int) -> str:
    """Start a scheduled automatic retry of a campaign."""
    return run_auto_retry(campaign_id)


def recover() -> str:
    """The scheduled recovery sweep (reschedules itself)."""
    return run_scheduled_recovery()


def deliver_admin_alert(delivery_id: int) -> str:
    """POST one admin webhook delivery (retries itself with backoff)."""
    return deliver(delivery_id)


def start_scheduled_campaign(campaign_id: int) -> str:
    """Start a SCHEDULED campaign whose time has come (does nothing after a cancel)."""
    return run_scheduled_start(campaign_id)


def refresh_campaign(campaign_id: int) -> str:
    """Recount a campaign whose recipients changed after its attempt ended (coalesced)."""
    return run_refresh(campaign_id)
