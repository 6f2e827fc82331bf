"""CLI commands on the embedded development queue: run the work here, to completion.

Without ``CAMPAIGN_RETRY_REDIS_URL`` the queue lives inside the process that starts it. A
``send``, ``retry`` or ``recover`` command therefore does not return after queuing work that
would die with it: it waits, printing progress, until the work is done (automatic retries
included), then stops its queue. Interrupted, it says what happens to the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click
from flask import Flask

from flask_campaign_retry.campaign_fields import fields
from flask_campaign_retry.queue.embedded import embedded_idle
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import EmailStatus

POLL_SECONDS = 0.5
INTERRUPTED = (
    "Interrupted: the work left over is picked up by the recovery sweep of the next embedded "
    "queue (the web process) or of a worker."
)


def uses_embedded_queue(state: AppState) -> bool:
    return state.settings.redis_url is None


def _progress(state: AppState, campaign_id: Any) -> tuple[Any, str]:
    session = state.db.session
    session.rollback()  # see what the worker thread committed
    campaign = session.get(state.models.campaign, campaign_id, populate_existing=True)
    attempt = (
        session.get(
            state.models.attempt, fields(campaign).current_attempt_id, populate_existing=True
        )
        if fields(campaign).current_attempt_id is not None
        else None
    )
    if attempt is None or not attempt.prepared:
        line = "  preparing the recipient list ..."
    else:
        done = attempt.sent + attempt.failed + attempt.uncertain + attempt.skipped
        line = (
            f"  attempt {attempt.number}: {done:,} of {attempt.targeted:,} recipients settled"
            f" ({attempt.sent:,} sent, {attempt.failed:,} failed, {attempt.uncertain:,} unknown,"
            f" {attempt.skipped:,} skipped), batches {attempt.batches_settled}/"
            f"{attempt.batches_total}"
        )
    if (
        fields(campaign).status is not EmailStatus.SENDING
        and fields(campaign).next_auto_retry_at is not None
    ):
        line += f"; automatic retry at {fields(campaign).next_auto_retry_at:%Y-%m-%d %H:%M:%S} UTC"
    return campaign, line


def _run_until(app: Flask, state: AppState, done: Callable[[], bool]) -> None:
    try:
        while not done():
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        click.echo(INTERRUPTED, err=True)
        raise
    finally:
        embedded = state.embedded
        if embedded is not None:
            embedded.stop()
            state.embedded = None
            state._queue = None


def run_campaign_here(app: Flask, state: AppState, campaign_id: Any) -> Any:
    """Wait, printing each change of progress, until the campaign is no longer SENDING and no
    automatic retry is planned; return the campaign."""
    click.echo("No CAMPAIGN_RETRY_REDIS_URL: running the work in this process until it is done.")
    last = ""
    result: dict[str, Any] = {}

    def done() -> bool:
        nonlocal last
        campaign, line = _progress(state, campaign_id)
        if line != last:
            click.echo(line)
            last = line
        result["campaign"] = campaign
        finished = fields(campaign).status is not EmailStatus.SENDING
        return finished and fields(campaign).next_auto_retry_at is None and embedded_idle(app)

    _run_until(app, state, done)
    return result["campaign"]


def run_queue_here(app: Flask, state: AppState) -> None:
    """Wait until the embedded queue has run everything a sweep queued (for ``recover``)."""
    if state.embedded is None:
        return
    click.echo("No CAMPAIGN_RETRY_REDIS_URL: running the requeued work in this process.")
    _run_until(app, state, lambda: embedded_idle(app))
