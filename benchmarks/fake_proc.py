"""The fake Mailgun server in a process of its own, with a small control API under ``/_bench/``.

Run alone it keeps the fake's CPU time out of the processes being measured (the web process and
the workers). Its records keep counts instead of every call, so a million recipients do not fill
its memory; accepted addresses are kept only while tracking is on (the retry benchmark checks
exactly who was resubmitted).

``python -m benchmarks.fake_proc`` prints one JSON line (url, api key, domain) and serves until
its standard input closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import requests
from werkzeug.wrappers import Request, Response

from flask_campaign_retry.providers.sandbox.records import RecordedCall, SendRecords
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun

from .procs import spawn_module, stop

CONTROL_PREFIX = "/_bench/"


class CountingRecords(SendRecords):
    """Counts calls by status and accepted recipients; keeps addresses only while tracking."""

    def __init__(self) -> None:
        super().__init__()
        self._count_lock = threading.Lock()
        self.calls_by_status: Counter[int] = Counter()
        self.accepted_total = 0
        self.tracking = False
        self.tracked: list[str] = []

    def add_call(self, call: RecordedCall) -> None:
        with self._count_lock:
            self.calls_by_status[call.status] += 1

    def add_accepted(
        self,
        *,
        message_id: str,
        addresses: Iterable[str],
        recipient_variables: Mapping[str, Mapping[str, Any]],
        user_variables: Mapping[str, str],
        call_number: int,
        at: datetime,
    ) -> None:
        batch = list(addresses)
        with self._count_lock:
            self.accepted_total += len(batch)
            if self.tracking:
                self.tracked.extend(batch)

    def reset(self) -> None:
        super().reset()
        with self._count_lock:
            self.calls_by_status.clear()
            self.accepted_total = 0
            self.tracked = []

    def as_dict(self, *, with_addresses: bool) -> dict[str, Any]:
        with self._count_lock:
            data: dict[str, Any] = {
                "requests": self.request_count,
                "calls_by_status": {str(k): v for k, v in self.calls_by_status.items()},
                "accepted": self.accepted_total,
            }
            if with_addresses:
                data["addresses"] = list(self.tracked)
        return data


def install_control(fake: FakeMailgun, records: CountingRecords) -> None:
    """Route ``/_bench/stats`` and ``/_bench/reset`` before the fake's own WSGI app."""
    serve_mailgun = fake.wsgi_app

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(CONTROL_PREFIX):
            return serve_mailgun(environ, start_response)
        request = Request(environ)
        if path == CONTROL_PREFIX + "reset":
            records.reset()
            fake.latency = float(request.args.get("latency", "0"))
            records.tracking = request.args.get("track") == "1"
            body: dict[str, Any] = {"ok": True}
        elif path == CONTROL_PREFIX + "stats":
            body = records.as_dict(with_addresses=request.args.get("addresses") == "1")
        else:
            return Response("not found", status=404)(environ, start_response)
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    fake.wsgi_app = app  # type: ignore[method-assign]


def main() -> int:
    fake = FakeMailgun()
    records = CountingRecords()
    fake.records = records
    install_control(fake, records)
    with fake:
        info = {"url": fake.url, "api_key": fake.api_key, "domain": fake.domain}
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin (or dies)
    return 0


@dataclass(frozen=True)
class FakeStats:
    requests: int
    calls_by_status: dict[str, int]
    accepted: int
    addresses: list[str]


class FakeMailgunProcess:
    """Client side: start the fake's process, configure it, read its counts."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._http = requests.Session()
        self.url = self.api_key = self.domain = ""

    def start(self) -> Self:
        proc = spawn_module("benchmarks.fake_proc", stdin=subprocess.PIPE)
        self._proc = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake Mailgun process did not start")
        info = json.loads(line)
        self.url, self.api_key, self.domain = info["url"], info["api_key"], info["domain"]
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop(proc)
        self._http.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def app_config(self) -> dict[str, Any]:
        """The host app's settings that point the real Mailgun provider at this fake."""
        return {
            "MAILGUN_API_KEY": self.api_key,
            "MAILGUN_DOMAIN": self.domain,
            "MAILGUN_API_URL": self.url,
        }

    def reset(self, *, latency: float = 0.0, track: bool = False) -> None:
        """Forget the counts; answer every call after ``latency`` seconds; keep addresses."""
        params = {"latency": str(latency), "track": "1" if track else "0"}
        answer = self._http.post(self.url + CONTROL_PREFIX + "reset", params=params, timeout=10)
        answer.raise_for_status()

    def stats(self, *, addresses: bool = False) -> FakeStats:
        params = {"addresses": "1" if addresses else "0"}
        answer = self._http.get(self.url + CONTROL_PREFIX + "stats", params=params, timeout=30)
        answer.raise_for_status()
        data = answer.json()
        return FakeStats(
            requests=int(data["requests"]),
            calls_by_status=dict(data["calls_by_status"]),
            accepted=int(data["accepted"]),
            addresses=list(data.get("addresses", [])),
        )


if __name__ == "__main__":
    raise SystemExit(main())
