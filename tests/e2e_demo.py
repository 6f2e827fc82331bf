"""Run the example newsletter app the way `make demo` does, for the end-to-end tests.

``running_demo`` starts ``examples/newsletter/run-demo.sh`` (which installs the example's
requirements, runs ``flask db upgrade`` and ``flask seed``, then serves) in its own process
group, on a free port and a temporary SQLite file, waits until it answers, and stops the whole
group afterwards. The helpers below sign in over HTTP and read the pages and the delivery route.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "newsletter"
SCRIPT = EXAMPLE / "run-demo.sh"
START_TIMEOUT = 60.0
IN_CI = os.environ.get("CI") == "true"

#: The demo's accounts (examples/newsletter/newsletter/seed.py).
ALICE = ("alice@example.com", "alice-demo")
BOB = ("bob@example.com", "bob-demo")
#: Seeded campaigns by owner: name -> status right after `flask seed`.
ALICE_CAMPAIGNS = {
    "Weekly digest #12": "PARTIALLY_SENT",
    "VIP early access": "FAILED",
    "Spring sale preview": "DRAFT",
}
BOB_CAMPAIGNS = {"Release notes 4.2": "SENT", "October recap": "PARTIALLY_SENT"}

_ROW = re.compile(
    r'<tr data-campaign-id="(\d+)" data-status="(\w+)">\s*<td><a href="[^"]+">([^<]+)</a>'
)
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Demo:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sign_in(self, account: tuple[str, str]) -> requests.Session:
        return sign_in(self.url, account)


def _environment(tmp_path: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "CAMPAIGN_RETRY_REDIS_URL") and not key.startswith("FLASK_")
    }
    env.update(
        DEMO_PORT=str(port),
        DEMO_DB=str(tmp_path / "newsletter.db"),
        PYTHON=sys.executable,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def running_demo(tmp_path: Path, **extra_env: str) -> Iterator[Demo]:
    """Start run-demo.sh like `make demo` does and yield once it serves (within 60 s)."""
    port = free_port()
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", str(SCRIPT)],
            cwd=REPO,
            env=_environment(tmp_path, port, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: server, worker and all
        )
    demo = Demo(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_serving(demo)
        yield demo
    finally:
        stop(process)


def _wait_until_serving(demo: Demo) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if demo.process.poll() is not None:
            raise AssertionError(
                f"run-demo.sh exited with {demo.process.returncode}:\n{demo.log()}"
            )
        try:
            if requests.get(demo.url + "/login", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"The demo did not serve within {START_TIMEOUT:.0f} s:\n{demo.log()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the demo's whole process group (script, web server, worker)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # The script's children may outlive it by a moment; make sure none is left.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(url: str, account: tuple[str, str]) -> requests.Session:
    session = requests.Session()
    page = session.get(url + "/login", timeout=10)
    email, password = account
    answer = session.post(
        url + "/login",
        data={"csrf_token": csrf_token(page.text), "email": email, "password": password},
        timeout=10,
    )
    assert answer.status_code == 200 and "Sign out" in answer.text, answer.text[:500]
    return session


def campaign_rows(session: requests.Session, url: str) -> dict[str, tuple[int, str]]:
    """The signed-in user's campaigns from the campaign list: name -> (id, status)."""
    page = session.get(url + "/", timeout=10)
    assert page.status_code == 200
    return {name: (int(cid), status) for cid, status, name in _ROW.findall(page.text)}


def delivery(session: requests.Session, url: str, campaign_id: int) -> Any:
    """The extension's delivery report (``GET /campaigns/<id>/delivery``)."""
    answer = session.get(
        f"{url}/campaigns/{campaign_id}/delivery",
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text[:500]
    return answer.json()
