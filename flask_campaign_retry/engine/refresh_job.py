"""The job that recounts a campaign whose recipients changed after its attempt ended."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from flask_campaign_retry.engine.finalize import refresh_campaign_status
from flask_campaign_retry.reconciliation.dirty import clear_mark, request_refresh
from flask_campaign_retry.state import AppState, get_state

log = logging.getLogger("flask_campaign_retry")


def run_refresh(campaign_id: Any) -> str:
    """Clear the campaign's dirty mark, then recount its status, counters and reason."""
    state = get_state()
    clear_mark(state, campaign_id)
    status = refresh_campaign_status(state, campaign_id)
    return status.value if status is not None else "not refreshed"


def _campaign_key(state: AppState, value: Any) -> Any:
    """``value`` (a webhook carries ids as text) as the campaign key column's Python type."""
    (key,) = state.models.campaign.__table__.primary_key.columns
    try:
        return key.type.python_type(value)
    except (NotImplementedError, TypeError, ValueError):
        return value


def campaign_truth_changed(state: AppState, campaign_id: Any) -> None:
    """Recipient rows of ``campaign_id`` changed outside an attempt (committed already): have
    the campaign recounted soon, coalesced; recount at once when Redis cannot take the mark."""
    campaign_id = _campaign_key(state, campaign_id)
    try:
        request_refresh(state, campaign_id)
    except RedisError as exc:
        log.warning(
            "campaign %s: refresh could not be queued (%s); recounting now",
            campaign_id,
            type(exc).__name__,
        )
        refresh_campaign_status(state, campaign_id)
