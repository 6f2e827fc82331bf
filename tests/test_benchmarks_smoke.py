"""The benchmarks' smoke run finishes without a crash and prints every target's line (issue 15's
seven, numbered as in the issue, and the SMTP extra).

``python -m benchmarks.run_all --quick --skip-million`` judges no speed (small sizes); it fails
only when a benchmark finds the engine crashing or sending wrongly. It uses its own PostgreSQL
database and this test session's Redis database (its own queue names, no flush).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.postgres
def test_quick_benchmarks_run_every_target(redis_url: str, postgres_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_all", "--quick", "--skip-million"],
        cwd=ROOT,
        env={**os.environ, "FCR_BENCH_REDIS_URL": redis_url, "FCR_BENCH_FLUSH_REDIS": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    # Issue 15's targets, numbered as there, then the SMTP extra: each prints its line.
    titles = {
        1: "initial send, production (forking) worker vs in-process worker",
        2: "scaling: 8 worker processes vs 1",
        3: "SQL statements per 1,000 recipients after the snapshot, production worker",
        4: "engine time vs the floor",
        5: "snapshot (preparation job) on PostgreSQL vs iterating the host's loader alone",
        6: "retry of a big campaign with 1% failed",
        7: "engine vs naive per-recipient commit; peak RSS growth",
        8: "SMTP provider",
    }
    for number, title in titles.items():
        assert f"\n[{number}] {title}" in done.stdout, f"target {number} missing:\n{output}"
    # The second floor of target 4 and the COPY/portable split of target 5 are reported.
    assert "the provider calls alone" in done.stdout, output[-5000:]
    assert "preparation job with the COPY path" in done.stdout, output[-5000:]
    assert "CRASH" not in done.stdout, output[-5000:]
