"""The benchmarks' smoke run finishes without a crash and prints every target's line.

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
    for number in range(1, 9):
        assert f"\n[{number}] " in done.stdout, f"target {number} printed nothing:\n{output}"
    assert "CRASH" not in done.stdout, output[-5000:]
