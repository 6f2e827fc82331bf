"""Target 2: 8 forking RQ worker processes against 1, with 500 ms provider latency per batch."""

from __future__ import annotations

from dataclasses import dataclass

from . import hostapp
from .cli import Target, main_for
from .context import BenchContext, expect
from .report import Figure, rate, seconds
from .send_runs import wait_attempt_end
from .worker_proc import WorkerPool

TARGET = 5.0
TITLE = "scaling: 8 worker processes vs 1, 500 ms provider latency per batch"


@dataclass(frozen=True)
class Plan:
    latency: float
    batch_size: int
    batches: int
    workers: tuple[int, int] = (1, 8)

    @property
    def recipients(self) -> int:
        return self.batch_size * self.batches


def plan(ctx: BenchContext) -> Plan:
    if ctx.options.quick:
        return Plan(latency=0.1, batch_size=50, batches=16)
    return Plan(latency=0.5, batch_size=100, batches=64)


def timed_send(ctx: BenchContext, config: dict[str, object], workers: int, n: int) -> float:
    """Seconds from the attempt's start to its end with ``workers`` idle worker processes."""
    app = ctx.make_app(dict(config))
    with WorkerPool(dict(config), workers), app.app_context():
        before = ctx.fake.stats().accepted
        campaign = hostapp.new_campaign("scale")
        attempt = hostapp.retry.send(campaign)
        elapsed = wait_attempt_end(app, attempt.id, timeout=900)
        accepted = ctx.fake.stats().accepted - before
        expect(accepted == n, f"scaling run: the fake accepted {accepted} of {n}")
    return elapsed


def run(ctx: BenchContext) -> Figure:
    p = plan(ctx)
    config = ctx.app_config(batch_size=p.batch_size)
    with ctx.make_app(dict(config)).app_context():
        hostapp.seed_list("scale", p.recipients)
    ctx.fake.reset(latency=p.latency)
    try:
        elapsed = {n: timed_send(ctx, config, n, p.recipients) for n in p.workers}
    finally:
        ctx.fake.reset()
    one, many = p.workers
    throughput = {n: p.recipients / s for n, s in elapsed.items()}
    ratio = throughput[many] / throughput[one]
    details = [
        f"{p.recipients:,} recipients in {p.batches} batches of {p.batch_size}, every provider "
        f"call answered after {p.latency * 1000:.0f} ms; real forking RQ workers (separate "
        "processes, idle before the send), same Redis queue and PostgreSQL",
    ]
    for n in p.workers:
        ideal = p.batches * p.latency / n
        details.append(
            f"{n} worker(s): {seconds(elapsed[n])} = {rate(throughput[n])} recipients/s "
            f"(latency alone would take {seconds(ideal)}; overhead "
            f"{(elapsed[n] - ideal) / (p.batches / n) * 1000:.0f} ms per batch per worker)"
        )
    return Figure(
        number=2,
        title=TITLE,
        figure=f"{ratio:.2f}x the throughput of 1 worker",
        target=f">= {TARGET:.0f}x",
        passed=ratio >= TARGET,
        judged=ctx.options.judged,
        details=details,
    )


TARGET_SPEC = Target(2, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
