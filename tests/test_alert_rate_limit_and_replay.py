"""An admin alert held back by the per-minute rate limit is delivered in the next minute, and a
Mailgun webhook token is remembered exactly as long as its timestamp could be accepted."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
import time_machine
from flask import Flask

from flask_campaign_retry.alerts.notify import notify_attempt_finished
from flask_campaign_retry.providers.mailgun.signature import ReplayCache, WebhookSignature
from flask_campaign_retry.state import get_state
from tests.helpers import drain
from tests.test_admin_webhook import (
    Receiver,
    deliveries,
    failed_campaign,
    receiver,  # noqa: F401  (the fixture)
    webhook_app,
)


def test_a_rate_limited_alert_is_delivered_in_the_next_minute(
    make_app: Callable[..., Flask],
    mailgun: Any,
    receiver: Receiver,  # noqa: F811
) -> None:
    app = webhook_app(
        make_app,
        [receiver.url],
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_RATE_LIMIT=1,
        CAMPAIGN_RETRY_ADMIN_WEBHOOK_THRESHOLD=1,
    )
    with app.app_context():
        state = get_state()
        left = 60 - time.time() % 60
        if left < 3:  # both alerts inside one minute (they take well under a second)
            time.sleep(left + 0.1)
        campaign, attempt = failed_campaign(mailgun)  # its alert goes out at once
        notify_attempt_finished(state, campaign, attempt, campaign.status)  # over the limit
        drain(app)
        assert len(receiver.received) == 1
        assert sorted(d.state for d in deliveries()) == ["delivered", "pending"]
        with time_machine.travel(timedelta(seconds=61), tick=True):
            drain(app, until=lambda: len(receiver.received) == 2)
        stored = deliveries()
        assert [d.state for d in stored] == ["delivered", "delivered"]
        events = receiver.events()
        assert [e["event"] for e in events] == ["campaign.failed", "campaign.repeated_failures"]
        assert {e["campaign_id"] for e in events} == {campaign.id}
        assert state.queue(app).queue.scheduled_job_registry.count == 0


def _signature(seconds: int, token: str) -> WebhookSignature:
    return WebhookSignature(str(seconds), token, "0" * 64)


def test_a_webhook_token_is_remembered_until_its_timestamp_goes_stale(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    cache = ReplayCache(connection, f"replay-{time.time_ns()}")
    tolerance = 3600.0
    now = 1_800_000_000.0
    try:
        signed_100_s_ago = _signature(int(now) - 100, "tok-a")
        assert cache.claim(signed_100_s_ago, now, tolerance) is True
        assert cache.claim(signed_100_s_ago, now + 5, tolerance) is False  # a replay
        ttl = connection.ttl(cache.prefix + "tok-a")
        # Kept until the timestamp leaves the window (3,500 s from now), plus a second.
        assert ttl == math.ceil(tolerance - 100) + 1
        # A token signed at the very edge of the window is still kept a moment.
        at_the_edge = _signature(int(now - tolerance), "tok-b")
        assert cache.claim(at_the_edge, now, tolerance) is True
        assert connection.ttl(cache.prefix + "tok-b") == 1
        # A released token (its request failed) is accepted again when Mailgun retries.
        cache.release(signed_100_s_ago)
        assert cache.claim(signed_100_s_ago, now, tolerance) is True
        # Another namespace does not see this one's tokens.
        other = ReplayCache(connection, f"other-{time.time_ns()}")
        assert other.claim(signed_100_s_ago, now, tolerance) is True
        connection.delete(other.prefix + "tok-a")
    finally:
        for key in connection.scan_iter(match=cache.prefix + "*"):
            connection.delete(key)
        connection.close()
