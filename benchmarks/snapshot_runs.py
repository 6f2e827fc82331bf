"""Target 5's runs, alternately on the same list: the host's loader iterated alone, the
preparation job (the snapshot) with the COPY path and with the portable INSERT path, and the
bound: the same rows COPYed straight into the recipient table with nothing checked."""

from __future__ import annotations

import io
import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from unittest import mock

from flask import Flask

from flask_campaign_retry.engine import snapshot
from flask_campaign_retry.engine.snapshot_copy import copy_field
from flask_campaign_retry.queue.worker import make_worker
from flask_campaign_retry.sql import chunked
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
    #: the bound: the loader's rows COPYed straight into the recipient table, nothing checked
    raw_copy_seconds: list[float]


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


def raw_copy(app: Flask, list_name: str, expected: int) -> float:
    """Seconds to read the loader and COPY its rows straight into the recipient table (its
    indexes and constraints as the engine has them), 1,000 a time, one commit: no checks, no
    dedupe, no batches. What the table itself costs per row."""
    reset_tracking(app)
    with app.app_context():
        campaign = hostapp.new_campaign(list_name)
        table = get_state(app).models.recipient.__table__.name
        columns = "campaign_id, email, email_key, variables, status, submissions"
        started = time.perf_counter()
        connection = hostapp.db.session.connection().connection.driver_connection
        cursor = connection.cursor()
        count = 0
        for chunk in chunked(hostapp.load_recipients(campaign), 1000):
            text = "".join(
                f"{campaign.id}\t{copy_field(item['email'])}\t"
                f"{copy_field(item['email'].casefold())}\t"
                f"{copy_field(json.dumps(item['variables']))}\tPENDING\t0\n"
                for item in chunk
            )
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO(text))
            count += len(chunk)
        hostapp.db.session.commit()
        elapsed = time.perf_counter() - started
    expect(count == expected, f"raw COPY wrote {count} of {expected}")
    return elapsed


def measure(ctx: BenchContext, app: Flask, list_name: str, n: int, reps: int) -> SnapshotRuns:
    # Warm-up, not counted: the host table's pages, each path's first run in this process.
    loader_alone(app, list_name, n)
    preparation(app, list_name, n, copy=True)
    preparation(app, list_name, n, copy=False)
    runs = SnapshotRuns(n, [], [], [], [])
    for _ in range(reps):
        runs.loader_seconds.append(loader_alone(app, list_name, n))
        runs.copy_seconds.append(preparation(app, list_name, n, copy=True))
        runs.insert_seconds.append(preparation(app, list_name, n, copy=False))
        runs.raw_copy_seconds.append(raw_copy(app, list_name, n))
    return runs
