"""Profile one initial send: ``python -m benchmarks.profile_send [--size N]``.

1. In-process worker, under pyinstrument (started right before ``retry.send``, stopped when the
   queue is empty).
2. One forking worker process, under ``py-spy record --subprocesses`` attached to it (its work
   horses included), from before ``retry.send`` to the attempt's end.

Writes the reports to ``benchmarks/profiles/`` and prints the top hotspots. Needs the
``pyinstrument`` and ``py-spy`` packages (not needed by the benchmarks themselves).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from . import hostapp
from .context import BenchContext, Options, bench_context, reset_tracking
from .env import machine_lines
from .send_runs import SendRun, run_engine, wait_attempt_end
from .stacks import (
    Stack,
    inclusive_time,
    pyinstrument_stacks,
    pyspy_stacks,
    self_time,
    table,
)
from .worker_proc import WorkerPool

OUT = Path(__file__).resolve().parent / "profiles"
ENGINE = "flask_campaign_retry/"
PYSPY_RATE = 250


def _summary(stacks: list[tuple[Stack, float]], heading: str) -> list[str]:
    total = sum(weight for _, weight in stacks)
    return [
        f"{heading}; {total:.1f} s sampled",
        *table(self_time(stacks), total, 20, "self time (top 20 frames):"),
        *table(
            inclusive_time(stacks, ENGINE),
            total,
            25,
            "time inside engine functions (inclusive, top 25):",
        ),
    ]


def profile_in_process(ctx: BenchContext, size: int, out: Path) -> list[str]:
    from pyinstrument import Profiler

    app = ctx.make_app(ctx.app_config())
    with app.app_context():
        hostapp.seed_list("prof", size)
        hostapp.seed_list("profwarm", 2_000)
    run_engine(ctx, app, "profwarm", 2_000)
    reset_tracking(app)
    profiler = Profiler(interval=0.001)
    profiler.start()
    run: SendRun = run_engine(ctx, app, "prof", size)
    profiler.stop()
    session = profiler.last_session
    assert session is not None
    tree = profiler.output_text(unicode=False, color=False, show_all=False)
    stacks = list(pyinstrument_stacks(session.root_frame()))
    lines = _summary(
        stacks,
        f"in-process worker, {size:,} recipients: {run.seconds:.2f} s under the profiler "
        f"(preparation {run.prepare_seconds:.2f} s); pyinstrument, 1 ms interval",
    )
    (out / "initial_send_inprocess.txt").write_text("\n".join([*lines, "", tree]) + "\n")
    return lines


def profile_forked(ctx: BenchContext, size: int, out: Path) -> list[str]:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    config = ctx.app_config()
    app = ctx.make_app(config)
    with app.app_context():
        hostapp.seed_list("profork", size)
    raw = out / "initial_send_forked.raw"
    with WorkerPool(config, 1) as pool, app.app_context():
        command = [pyspy, "record", "--pid", str(pool.pids[0]), "--subprocesses"]
        command += ["--rate", str(PYSPY_RATE), "--format", "raw", "--output", str(raw)]
        command += ["--nonblocking"]
        recorder = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        campaign = hostapp.new_campaign("profork")
        attempt = hostapp.retry.send(campaign)
        seconds = wait_attempt_end(app, attempt.id, timeout=900)
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
    stacks = list(pyspy_stacks(raw.read_text().splitlines(), PYSPY_RATE))
    lines = _summary(
        stacks,
        f"one forking worker process and its work horses, {size:,} recipients: "
        f"{seconds:.2f} s; py-spy at {PYSPY_RATE} Hz, non-idle samples only",
    )
    (out / "initial_send_forked.txt").write_text("\n".join(lines) + "\n")
    raw.unlink()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=OUT, help="where the reports go")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    header = machine_lines()
    with bench_context(Options()) as ctx:
        report = [*header, "", *profile_in_process(ctx, args.size, out), ""]
        report += profile_forked(ctx, args.size, out)
    for line in report:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
