"""The admin-webhook delivery job: one signed POST per try, its own backoff and rate limit.

The RQ job :func:`deliver` carries only a delivery id (see :mod:`.store`); the signing
secret is read from the app's config at each try, so it is never stored in Redis, in a job
payload or in a log record. Log records name the target as ``scheme://host:port`` only, because
webhook URLs often carry a token in their path.

One try:

1. a terminal delivery (``delivered``, ``refused``, ``gave_up``) is left alone, so a re-run of
   an abandoned job changes nothing; a per-delivery Redis lock keeps two jobs from trying at
   once;
2. the address policy (:mod:`.targets`) is applied; a refused target is recorded with
   the reason, logged, and never contacted;
3. the per-URL rate limit (a counter per minute) is checked; beyond it the try moves to a later
   minute without counting as a try (nothing is dropped);
4. the POST (timeouts 3 s connect, 10 s read, no redirects, no proxies): a 2xx answer settles
   the delivery; anything else counts a try and, until ``..._MAX_TRIES``, schedules the next
   one through RQ's scheduler after an exponential backoff with full jitter.

Delivery is at-least-once (an answer lost after the receiver acted is tried again), so
receivers deduplicate on the payload's ``event_id``. Nothing here touches the campaign: a
webhook that never answers changes no campaign state.
"""

from __future__ import annotations

import hashlib
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from flask import Flask, current_app
from redis import Redis
from redis.exceptions import LockError

from flask_campaign_retry.alerts.config import WebhookOptions, load_webhook_options
from flask_campaign_retry.alerts.signing import signature_headers
from flask_campaign_retry.alerts.store import (
    DELIVERED,
    GAVE_UP,
    REFUSED,
    TERMINAL,
    namespace,
    read_record,
    record_key,
    update_record,
)
from flask_campaign_retry.alerts.targets import (
    TargetRefused,
    check_target,
    guarded_session,
    redact_url,
)
from flask_campaign_retry.clock import isoformat_utc, utcnow
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.queue.names import ALERT_JOB
from flask_campaign_retry.state import AppState, get_state

log = logging.getLogger("flask_campaign_retry")

JOB = ALERT_JOB
TIMEOUTS = (3.0, 10.0)
RATE_WINDOW = 60
LOCK_SECONDS = 60
USER_AGENT = "flask-campaign-retry admin webhook"
EVENT_HEADER = "X-Campaign-Retry-Event"


def backoff_delay(
    failures: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after ``failures`` failed tries: uniform in [0, min(cap, base * 2^(n-1))].

    Full jitter spreads the retries of deliveries that failed together (a receiver that was
    down) instead of bringing them back in one burst.
    """
    exponent = min(max(failures, 1) - 1, 60)
    ceiling = min(cap, base * (2**exponent))
    return (rng or random).uniform(0.0, ceiling)


def rate_limit_wait(
    connection: Redis, state: AppState, url: str, limit: int, now: float | None = None
) -> float | None:
    """None if ``url`` may get one more delivery this minute, else seconds until the next one.

    A fixed window per minute per URL (keyed by a hash of the URL, never the URL itself). The
    counter also counts refused takers, which only makes the rest of that minute wait.
    """
    current = time.time() if now is None else now
    window = int(current // RATE_WINDOW)
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    key = f"{namespace(state)}:rate:{digest}:{window}"
    pipe = connection.pipeline()
    pipe.incr(key)
    pipe.expire(key, RATE_WINDOW * 2)
    count = int(pipe.execute()[0])
    if count <= limit:
        return None
    return (window + 1) * RATE_WINDOW - current


def post_signed(url: str, body: bytes, secret: str, *, allow_private: bool, event: str) -> int:
    """POST ``body`` signed at this moment; return the HTTP status without reading the body.

    Raises TargetRefused when the host now resolves to a refused address, and
    ``requests.RequestException`` for connection failures and timeouts.
    """
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        **signature_headers(secret, body),
    }
    with (
        guarded_session(allow_private=allow_private) as session,
        session.post(
            url, data=body, headers=headers, timeout=TIMEOUTS, allow_redirects=False, stream=True
        ) as response,
    ):
        return int(response.status_code)


def deliver(delivery_id: int) -> str:
    """RQ entry point: make one try of delivery ``delivery_id``; return what happened."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state = get_state(app)
    connection = state.queue(app).connection
    key = record_key(state, delivery_id)
    record = read_record(connection, key)
    if not record:
        log.warning("admin webhook delivery %s is unknown or expired; nothing sent", delivery_id)
        return "missing"
    if record["state"] in TERMINAL:
        return record["state"]
    try:
        options = load_webhook_options(app.config)
    except ConfigurationError as exc:
        log.error(
            "admin webhook delivery %s left pending: invalid configuration: %s", delivery_id, exc
        )
        return "misconfigured"
    lock = connection.lock(f"{key}:lock", timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        return "busy"  # another job is trying it now; that one schedules any next try
    one = _Try(app, state, connection, options, delivery_id, record)
    try:
        return one.run()
    finally:
        try:
            lock.release()
        except LockError:
            one.log(logging.WARNING, "outlived its lock")


@dataclass
class _Try:
    """One try of one delivery, with what it needs to record and log its result."""

    app: Flask
    state: AppState
    connection: Redis
    options: WebhookOptions
    delivery_id: int
    record: dict[str, str]

    @property
    def key(self) -> str:
        return record_key(self.state, self.delivery_id)

    def run(self) -> str:
        settings = self.state.settings
        url = self.record["url"]
        secret = settings.admin_webhook_secret
        if not secret:
            return self.refuse("no CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET is configured")
        try:
            check_target(url, allow_private=settings.admin_webhook_allow_private)
        except TargetRefused as exc:
            return self.refuse(exc.reason)
        except (socket.gaierror, UnicodeError) as exc:
            return self.failed(f"DNS lookup failed ({type(exc).__name__})", None)
        wait = rate_limit_wait(self.connection, self.state, url, self.options.rate_limit)
        if wait is not None:
            when = self.schedule(wait + random.uniform(0.0, RATE_WINDOW / 2))
            self.log(logging.INFO, f"rate-limited; deferred to {when}", next_try_at=when)
            return "deferred"
        try:
            status = post_signed(
                url,
                self.record["body"].encode("utf-8"),
                secret,
                allow_private=settings.admin_webhook_allow_private,
                event=self.record["event"],
            )
        except TargetRefused as exc:  # the name resolved differently at connect time
            return self.refuse(exc.reason)
        except requests.RequestException as exc:  # the class only: messages hold the URL
            return self.failed(type(exc).__name__, None)
        if not 200 <= status < 300:
            return self.failed(f"HTTP {status}", status)
        tries = int(self.connection.hincrby(self.key, "tries", 1))
        update_record(
            self.connection,
            self.key,
            state=DELIVERED,
            last_status=status,
            last_error=None,
            next_try_at=None,
        )
        self.log(logging.INFO, "delivered", http_status=status, tries=tries)
        return DELIVERED

    def refuse(self, reason: str) -> str:
        """Record and log a refusal; the target is never contacted for this delivery."""
        update_record(
            self.connection,
            self.key,
            state=REFUSED,
            last_error=f"refused: {reason}",
            next_try_at=None,
        )
        self.log(logging.WARNING, f"refused, not sent: {reason}", reason=reason)
        return REFUSED

    def failed(self, error: str, status: int | None) -> str:
        """Count a failed try; schedule the next one with backoff, or give up at the limit."""
        tries = int(self.connection.hincrby(self.key, "tries", 1))
        details: dict[str, Any] = {"error": error, "http_status": status, "tries": tries}
        if tries >= self.options.max_tries:
            update_record(
                self.connection,
                self.key,
                state=GAVE_UP,
                last_error=error,
                last_status=status,
                next_try_at=None,
            )
            self.log(logging.ERROR, f"given up after {tries} tries: {error}", **details)
            return GAVE_UP
        update_record(self.connection, self.key, last_error=error, last_status=status)
        delay = backoff_delay(tries, self.options.backoff_base, self.options.backoff_cap)
        when = self.schedule(delay)
        self.log(
            logging.WARNING, f"failed ({error}); next try at {when}", next_try_at=when, **details
        )
        return "retrying"

    def schedule(self, delay: float) -> str:
        """Enqueue the next try ``delay`` seconds from now; return its time (ISO, UTC)."""
        at = utcnow() + timedelta(seconds=delay)
        self.state.queue(self.app).enqueue(JOB, self.delivery_id, at=at)
        when = isoformat_utc(at) or ""
        update_record(self.connection, self.key, next_try_at=when)
        return when

    def log(self, level: int, what: str, **extra: Any) -> None:
        """One structured record naming the redacted target only, never the path or secret."""
        target = redact_url(self.record.get("url", ""))
        details = {
            "event": "admin_webhook",
            "delivery_id": self.delivery_id,
            "webhook_event": self.record.get("event"),
            "campaign_id": self.record.get("campaign_id"),
            "target": target,
            **extra,
        }
        log.log(
            level,
            "admin webhook %s (%s) to %s %s",
            self.delivery_id,
            details["webhook_event"],
            target,
            what,
            extra={"campaign_retry": details},
        )
