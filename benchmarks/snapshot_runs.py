"""Target 5's runs: the host's loader iterated alone, and the preparation job (the snapshot)
with the COPY path and with the portable INSERT path, alternately on the same list."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from unittest import mock

from flask import Flask

from flask_campaign_retry.engine import snapshot
from flask_campaign_retry.queue.worker import make_worker
from flask_campaign_retry.state import get_state

from . import hostapp
from .context import BenchContext, expect, reset_tracking
from .send_runs import keep_signal_handlers


@dataclass(frozen=True)
class SnapshotRuns:
    recipients: int
    loader_seconds: list[float]
    copy_seconds: list[float]
    insert_seconds: list[float]


def loader_alone(app: Flask, list_name: str, expected: int) -> float:
    """Seconds to iterate the host's loader over the list, doing nothing with the items."""
    with app.app_context():
        campaign = hostapp.new_campaign(list_name)
        started = time.perf_counter()
        count = sum(1 for _ in hostapp.load_recipients(campaign))
        elapsed = time.perf_counter() - started
        hostapp.db.session.commit()
    expect(count == expected, f"the loader gave {count} of {expected}")
    return elapsed


def preparation(app: Flask, list_name: str, expected: int, *, copy: bool) -> float:
    """Seconds of the preparation job (message checks, snapshot, commit) in an in-process
    worker; the batch jobs it enqueued are then dropped (nothing is sent)."""
    reset_tracking(app)
    with app.app_context():
        campaign = hostapp.new_campaign(list_name)
        hostapp.retry.send(campaign)
        portable = mock.patch.object(snapshot, "copy_writer", lambda *args: None)
        with keep_signal_handlers(), nullcontext() if copy else portable:
            worker = make_worker(app, simple=True)
            started = time.perf_counter()
            worker.work(burst=True, max_jobs=1, logging_level="WARNING")
            elapsed = time.perf_counter() - started
        get_state(app).queue(app).queue.empty()
        hostapp.db.session.expire_all()
        frozen = hostapp.db.session.get(hostapp.Campaign, campaign.id)
        total = frozen.total_recipients if frozen is not None else None
    expect(total == expected, f"snapshot froze {total} of {expected}")
    return elapsed


def measure(ctx: BenchContext, app: Flask, list_name: str, n: int, reps: int) -> SnapshotRuns:
    loader_alone(app, list_name, n)  # warm the host table's pages
    runs = SnapshotRuns(n, [], [], [])
    for _ in range(reps):
        runs.loader_seconds.append(loader_alone(app, list_name, n))
        runs.copy_seconds.append(preparation(app, list_name, n, copy=True))
        runs.insert_seconds.append(preparation(app, list_name, n, copy=False))
    return runs
