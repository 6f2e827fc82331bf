"""A batch job keeps going: after its own batch it claims the next due batch of the same
attempt, until none is left or its time budget is spent.

Why: a forking RQ worker forks a work horse per job, and every horse pays the fork, the app
context, the provider's client and the first database connection. A job that serves many
batches pays that once, so one production worker sends about as fast as an in-process one.

How it stays safe: each further batch is claimed exactly like the job's own (the same
compare-and-set to SENDING under a new token and a lease, ``SKIP LOCKED`` on PostgreSQL), so
claims, leases, kill recovery and "only one claim wins" are unchanged. A horse killed
mid-chain leaves at most the batch it held SENDING (the lease sweep makes it UNCERTAIN) and
every other batch QUEUED with its job still waiting (or requeued by the sweep). Every batch
keeps its own job, so the number of workers sets the parallelism: each worker's job chains
on its own, taking batches in ``seq`` order; a job whose batch another chain already took
returns at once. The waiting job of a batch a chain claimed is discarded from the queue (best
effort), so no horse is forked just to find its batch taken.

The budget is ``CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS`` (0: one batch per job, as before), at
most half of ``CAMPAIGN_RETRY_JOB_TIMEOUT`` so a batch started near the end of the budget
still finishes before RQ's timeout kills the horse.
"""

from __future__ import annotations

import logging
import time

from flask import current_app

from flask_campaign_retry.queue.job_ids import batch_job_id
from flask_campaign_retry.state import AppState

log = logging.getLogger("flask_campaign_retry")

#: The chain's clock (a module attribute, so a test can drive it).
clock = time.monotonic


class ChainBudget:
    """How long a batch job may keep claiming further batches (monotonic clock)."""

    def __init__(self, state: AppState) -> None:
        settings = state.settings
        self.seconds = min(settings.batch_chain_seconds, settings.job_timeout / 2)
        self.started = clock()

    def left(self) -> bool:
        """True while another batch may be started."""
        return self.seconds > 0 and clock() - self.started < self.seconds


def discard_waiting_job(state: AppState, batch_id: int, tries: int) -> None:
    """Drop the waiting job of a batch this chain just claimed (``tries``: its claims so far,
    this one included). Best effort: a job left in the queue only finds its batch claimed."""
    job_id = batch_job_id(state.settings.queue_name, batch_id, tries - 1)
    try:
        state.queue(current_app._get_current_object()).discard_waiting(  # type: ignore[attr-defined]
            job_id
        )
    except Exception:
        log.debug("could not discard the waiting job %s", job_id, exc_info=True)
