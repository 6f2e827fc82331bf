"""Starting and stopping the benchmarks' own subprocesses (never anyone else's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def spawn_module(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
    stdout: int | None = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """``python -m module args`` from the repo root with this interpreter."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdin=stdin,
        stdout=stdout,
        text=True,
    )


def stop(proc: subprocess.Popen[str], timeout: float = 15.0) -> None:
    """Ask one of our subprocesses to stop (SIGTERM), kill it if it does not."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def run_json(module: str, *args: str, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``python -m module`` to completion and parse the JSON object on its last line."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{module} {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
