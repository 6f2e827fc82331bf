"""One process of the memory benchmark, run fresh per size: ``python -m benchmarks.memory_probe``.

``web CAMPAIGN_ID``: build the host app and call ``retry.send`` (what a web request does).
``worker``: build the host app and run an in-process RQ worker (SimpleWorker) until the queue is
empty: the preparation job (snapshot) and every batch job run in this one process, so anything
that accumulates from job to job shows in its peak.

Prints one JSON line: peak RSS (``ru_maxrss`` and ``VmHWM``), the RSS before any work, seconds.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from flask_campaign_retry.queue.worker import run_burst

from . import hostapp


def _status_kb(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def main(argv: list[str]) -> int:
    app = hostapp.create_app_from_env()
    import flask_campaign_retry.jobs  # noqa: F401  (loaded before the baseline is read)

    baseline_kb = _status_kb("VmRSS")
    started = time.perf_counter()
    if argv[0] == "web":
        with app.app_context():
            campaign = hostapp.db.session.get(hostapp.Campaign, int(argv[1]))
            hostapp.retry.send(campaign)
    elif argv[0] == "worker":
        run_burst(app)
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")
    result = {
        "mode": argv[0],
        "seconds": time.perf_counter() - started,
        "baseline_kb": baseline_kb,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "hwm_kb": _status_kb("VmHWM"),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
