"""Build Mailgun webhook requests the way Mailgun signs them, for tests of host apps.

::

    event = fake_mailgun.events.deliver("ann@example.com")
    client.post("/campaigns/webhooks/mailgun", json=signed_webhook(event, SIGNING_KEY))
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from flask_campaign_retry.providers.mailgun.signature import sign


def signed_webhook(
    event_data: Mapping[str, Any],
    signing_key: str,
    *,
    timestamp: int | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The JSON body Mailgun would POST for ``event_data``: ``{"signature": {timestamp,
    token, signature}, "event-data": ...}``, signed now with a fresh 50-character token unless
    ``timestamp``/``token`` are given (to test stale timestamps and replays)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(25) if token is None else token
    return {
        "signature": {
            "timestamp": stamp,
            "token": nonce,
            "signature": sign(signing_key, stamp, nonce),
        },
        "event-data": dict(event_data),
    }
