"""Run the SMTP sink as a process: the example app's ``DEMO_PROVIDER=smtp`` and the SMTP
benchmark use it.

    python -m flask_campaign_retry.testing.smtp_sink_server --port 2525 \\
        --refuse '@bounce\\.example\\.com$'

Prints ``smtp sink listening on 127.0.0.1:<port>`` once it accepts connections, and a count
of the messages it received when stopped (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from flask_campaign_retry.testing.smtp_faults import SMTPFault
from flask_campaign_retry.testing.smtp_sink import SMTPSink


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument(
        "--refuse",
        action="append",
        default=[],
        metavar="REGEX",
        help="answer 550 to RCPT TO for addresses matching REGEX (repeatable)",
    )
    parser.add_argument("--user", default=None, help="require AUTH with this user name")
    parser.add_argument("--password", default=None, help="... and this password")
    args = parser.parse_args(argv)
    faults = tuple(
        SMTPFault("rcpt", code=550, match=pattern, message="5.1.1 <{address}>: mailbox unavailable")
        for pattern in args.refuse
    )
    credentials = (args.user, args.password) if args.user and args.password else None
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with SMTPSink(credentials=credentials, faults=faults, port=args.port) as sink:
        print(f"smtp sink listening on 127.0.0.1:{sink.port}", flush=True)
        stopping.wait()
        print(f"smtp sink received {len(sink.messages)} messages", flush=True)


if __name__ == "__main__":
    main()
