"""RQ entry points. They take ids only and run inside the app context (see queueing)."""

from __future__ import annotations

from .auto_retry import run_auto_retry
from .batch_job import run_batch
from .sending import prepare_attempt as _prepare_attempt


def prepare_attempt(attempt_id: int) -> str:
    """Snapshot or target an attempt's recipients and enqueue its batches."""
    return _prepare_attempt(attempt_id)


def send_batch(batch_id: int) -> str:
    """Claim and send one batch."""
    return run_batch(batch_id)


def auto_retry_campaign(campaign_id: int) -> str:
    """Start a scheduled automatic retry of a campaign."""
    return run_auto_retry(campaign_id)


def recover() -> str:
    """The scheduled recovery sweep (reschedules itself)."""
    from .recovery import run_scheduled_recovery

    return run_scheduled_recovery()
