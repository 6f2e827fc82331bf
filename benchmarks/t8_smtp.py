"""Target 8: the SMTP provider through the engine (one in-process worker) against the SMTP sink
on loopback, side by side with a bare smtplib loop over one connection sending the same
messages; and identical-content batches (one transaction per batch) against personalised ones.

The sink runs in a process of its own (``testing.smtp_sink_server``), so its CPU time is not
charged to the measured process.
"""

from __future__ import annotations

import smtplib
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.providers.base import BatchRef
from flask_campaign_retry.providers.smtp.compose import Composer
from flask_campaign_retry.queue.worker import run_burst

from . import hostapp
from .cli import Target, main_for
from .context import BenchContext, expect
from .procs import spawn_module, stop
from .report import Figure, rate, seconds
from .send_runs import keep_signal_handlers

FLOOR_RATIO = 0.8
IDENTICAL_RATIO = 5.0
TITLE = "SMTP provider, personalised, 1 worker, vs a bare smtplib loop; identical-content batches"


@contextmanager
def sink_process() -> Iterator[int]:
    proc = spawn_module("flask_campaign_retry.testing.smtp_sink_server", stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        expect("listening on 127.0.0.1:" in line, f"the SMTP sink did not start: {line!r}")
        yield int(line.rsplit(":", 1)[1])
    finally:
        stop(proc)


def _send(app: Flask, list_name: str, n: int, **columns: Any) -> tuple[float, int]:
    """Seconds from ``retry.send`` to the last batch settled, in-process RQ worker."""
    with app.app_context():
        campaign = hostapp.Campaign(list_name=list_name, **columns)
        hostapp.db.session.add(campaign)
        hostapp.db.session.commit()
        started = time.perf_counter()
        hostapp.retry.send(campaign)
        with keep_signal_handlers():
            run_burst(app)
        elapsed = time.perf_counter() - started
        hostapp.db.session.expire_all()
        done = hostapp.db.session.get(hostapp.Campaign, campaign.id)
        expect(
            done is not None and done.status == EmailStatus.SENT and done.successful_sends == n,
            f"SMTP campaign ended {getattr(done, 'status', None)}: "
            f"{getattr(done, 'failure_reason', None)}",
        )
        return elapsed, campaign.id


def _bare_loop(app: Flask, port: int, campaign_id: int) -> tuple[float, int]:
    """The floor: the same messages (rendered before the clock starts) sent with
    ``smtplib.SMTP.sendmail`` one after another over one connection."""
    with app.app_context():
        campaign = hostapp.db.session.get(hostapp.Campaign, campaign_id)
        message = hostapp.build_message(campaign)
        composer = Composer(message, BatchRef(0, 0, 0), None)
        rendered = [
            (
                email,
                composer.render(email, {"first_name": first}, f"{uuid.uuid4().hex}@example.com"),
            )
            for email, first in hostapp.iter_subscribers(campaign.list_name)
        ]
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", port)
    for email, body in rendered:
        smtp.sendmail("news@example.com", [email], body)
    smtp.quit()
    return time.perf_counter() - started, len(rendered)


def run(ctx: BenchContext) -> Figure:
    n = 500 if ctx.options.quick else 10_000
    repeats = 1 if ctx.options.quick else 2
    list_name = f"smtp{uuid.uuid4().hex[:6]}"
    with sink_process() as port:
        smtp_config = {"CAMPAIGN_RETRY_PROVIDER": "smtp", "MAIL_SERVER": "127.0.0.1",
                       "MAIL_PORT": port}  # fmt: skip
        personal = ctx.make_app(ctx.app_config(**smtp_config))
        shared = ctx.make_app(
            ctx.app_config(**smtp_config, CAMPAIGN_RETRY_SMTP_SHARED_TO="undisclosed-recipients:;")
        )
        with personal.app_context():
            hostapp.seed_list(list_name, n)
        engine_runs: list[float] = []
        floor_runs: list[float] = []
        identical_runs: list[float] = []
        for _ in range(repeats):  # alternated, so a busy moment hits both sides
            engine_seconds, campaign_id = _send(personal, list_name, n)
            engine_runs.append(engine_seconds)
            floor_seconds, sent = _bare_loop(personal, port, campaign_id)
            expect(sent == n, f"the bare loop sent {sent} of {n}")
            floor_runs.append(floor_seconds)
            identical_seconds, _ = _send(
                shared, list_name, n, subject="Our news", html="<p>Hello, this is our news.</p>"
            )
            identical_runs.append(identical_seconds)
    engine, floor, identical = min(engine_runs), min(floor_runs), min(identical_runs)
    ratio = floor / engine  # engine rate / floor rate
    speedup = engine / identical
    passed = ratio >= FLOOR_RATIO and speedup >= IDENTICAL_RATIO
    return Figure(
        number=8,
        title=TITLE,
        figure=f"{ratio:.2f}x the bare loop; identical {speedup:.1f}x personalised",
        target=f">= {FLOOR_RATIO}x the bare loop; identical >= {IDENTICAL_RATIO:.0f}x personalised",
        passed=passed,
        judged=ctx.options.judged,
        details=[
            f"{n:,} personalised recipients (own To:, %recipient.first_name% in subject and "
            f"body), batches of 1,000: engine best {seconds(engine)} ({rate(n / engine)}/s), "
            f"runs {', '.join(seconds(s) for s in engine_runs)}",
            f"bare smtplib loop, one connection, messages rendered before timing: best "
            f"{seconds(floor)} ({rate(n / floor)}/s), "
            f"runs {', '.join(seconds(s) for s in floor_runs)}",
            f"identical content (CAMPAIGN_RETRY_SMTP_SHARED_TO, one transaction per batch): best "
            f"{seconds(identical)} ({rate(n / identical)}/s)",
            "the sink (aiosmtpd) runs in its own process; the engine's time includes the "
            "snapshot, claims, per-recipient writes and finalization on PostgreSQL",
        ],
    )


TARGET_SPEC = Target(8, TITLE, run)

if __name__ == "__main__":
    raise SystemExit(main_for(TARGET_SPEC))
