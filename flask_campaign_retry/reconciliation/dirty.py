"""Coalesced campaign refreshes after recipient truth changed outside an attempt.

A delivery event or a reconciliation can move recipients (UNCERTAIN to DELIVERED, SENT to a
bounce) after the campaign's attempt ended; the campaign's status, ``successful_sends`` and
``failure_reason`` must follow. Recounting per event would cost a GROUP BY over the campaign's
recipients each time, so a change only marks the campaign dirty: a Redis ``SET NX`` key, and the
one caller that set it enqueues the refresh job (``queue.names.REFRESH_JOB``) a moment later.
The job clears the key *before* it recounts, so a change committed after the clear marks the
campaign again and gets its own refresh: none is lost, and a burst of events costs one recount.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.queue.names import REFRESH_JOB
from flask_campaign_retry.state import AppState

log = logging.getLogger("flask_campaign_retry")

#: How long events are gathered before the recount runs.
COALESCE_SECONDS = 2.0
#: A dirty mark outlives a lost job at most this long (the recovery sweep recounts anyway).
MARK_TTL_SECONDS = 3600


def dirty_key(state: AppState, campaign_id: Any) -> str:
    return f"campaign_retry:{state.settings.queue_name}:refresh:{campaign_id}"


def request_refresh(state: AppState, campaign_id: Any) -> bool:
    """Mark ``campaign_id`` dirty; enqueue its refresh unless one is already pending.

    Returns True when this call enqueued the job. Raises ``redis.RedisError`` when Redis is
    unreachable (the caller decides whether to recount at once instead).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    backend = state.queue(app)
    key = dirty_key(state, campaign_id)
    if not backend.connection.set(key, "1", nx=True, ex=MARK_TTL_SECONDS):
        return False
    try:
        backend.enqueue(REFRESH_JOB, campaign_id, at=utcnow() + timedelta(seconds=COALESCE_SECONDS))
    except Exception:
        backend.connection.delete(key)
        raise
    return True


def clear_mark(state: AppState, campaign_id: Any) -> None:
    """Called by the refresh job before it recounts (see the module docstring)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state.queue(app).connection.delete(dirty_key(state, campaign_id))
