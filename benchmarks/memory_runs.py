"""Peak RSS of the web process and the worker, 1,000,000 vs 10,000 recipients (target 7),
and the sent 1,000,000-recipient campaign target 6 retries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import hostapp
from .context import BenchContext, expect
from .procs import run_json
from .report import rate, seconds


@dataclass(frozen=True)
class Probe:
    size: int
    campaign_id: int
    config: dict[str, Any]
    web: dict[str, Any]
    worker: dict[str, Any]


def sizes(ctx: BenchContext) -> tuple[int, int]:
    if ctx.options.quick:
        return 2_000, 20_000
    if ctx.options.skip_million:
        return 10_000, 100_000
    return 10_000, 1_000_000


def probe(ctx: BenchContext, size: int) -> Probe:
    """Send a ``size``-recipient campaign: ``retry.send`` in one fresh process, every job in
    another fresh worker process; read both peaks."""
    config = ctx.app_config()
    app = ctx.make_app(config)
    list_name = f"mem{size}"
    with app.app_context():
        hostapp.seed_list(list_name, size)
        campaign_id = hostapp.new_campaign(list_name).id
    env = {hostapp.CONFIG_ENV: json.dumps(config)}
    before = ctx.fake.stats().accepted
    web = run_json("benchmarks.memory_probe", "web", str(campaign_id), env=env, timeout=300)
    worker = run_json("benchmarks.memory_probe", "worker", env=env, timeout=3600)
    with app.app_context():
        campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
        assert campaign is not None
        expect(
            campaign.successful_sends == size,
            f"memory run: {campaign.successful_sends} of {size} sent ({campaign.status})",
        )
    accepted = ctx.fake.stats().accepted - before
    expect(accepted == size, f"memory run: the fake accepted {accepted} of {size}")
    return Probe(size, campaign_id, config, web, worker)


def big_probe(ctx: BenchContext) -> Probe:
    """The big campaign's probe (target 6 retries that campaign)."""
    return ctx.once("big_probe", lambda: probe(ctx, sizes(ctx)[1]))


def _mb(kb: int) -> float:
    return kb / 1024


@dataclass(frozen=True)
class MemoryGrowth:
    small: int
    big: int
    worst_mb: float
    lines: list[str]


def memory_growth(ctx: BenchContext) -> MemoryGrowth:
    """Peak RSS of the web process and the worker, big campaign vs small, and how it was read."""
    small_size, big_size = sizes(ctx)
    small = probe(ctx, small_size)
    big = big_probe(ctx)
    deltas = {
        role: _mb(getattr(big, role)["hwm_kb"] - getattr(small, role)["hwm_kb"])
        for role in ("web", "worker")
    }
    lines = []
    for role in ("web", "worker"):
        s, b = getattr(small, role), getattr(big, role)
        lines.append(
            f"{role}: peak RSS (VmHWM) {_mb(s['hwm_kb']):.1f} MB at {small_size:,} -> "
            f"{_mb(b['hwm_kb']):.1f} MB at {big_size:,} (delta {deltas[role]:+.1f} MB); "
            f"RSS before any work {_mb(s['baseline_kb']):.1f} / {_mb(b['baseline_kb']):.1f} MB"
        )
    worker_seconds = big.worker["seconds"]
    lines += [
        f"the {big_size:,}-recipient send took {seconds(worker_seconds)} in the worker "
        f"({rate(big_size / worker_seconds)} recipients/s, snapshot included)",
        "each size ran in fresh processes; the worker is an in-process RQ SimpleWorker, so "
        "the snapshot and every batch job of the campaign ran in the measured process; "
        f"peak = /proc/self/status VmHWM (ru_maxrss read {_mb(b['maxrss_kb']):.1f} MB: Linux "
        "carries the spawning parent's peak over exec)",
    ]
    return MemoryGrowth(small_size, big_size, max(deltas.values()), lines)
