"""A real forking RQ worker process for the host app: `python -m tests.worker_proc`.

The app's config comes as JSON in HOSTAPP_CONFIG (see hostapp.create_app_from_env).
"""

from __future__ import annotations

import sys

from flask_campaign_retry.queue.worker import make_worker
from tests.hostapp import create_app_from_env


def main() -> int:
    app = create_app_from_env()
    burst = "--burst" in sys.argv
    worker = make_worker(app)
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
