"""Signing admin-webhook requests, and the helper receivers use to verify them.

Every admin-webhook POST carries two headers:

``X-Campaign-Retry-Timestamp``
    Unix time in whole seconds when this try was signed (each retry is signed afresh, so a
    delivery that succeeds on its third try is not rejected as stale).
``X-Campaign-Retry-Signature``
    ``v1=<hex>``: the lowercase hex HMAC-SHA256, keyed with
    ``CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET``, of ``timestamp + "." + body`` (body = the exact
    request bytes, UTF-8 JSON).

Why two headers rather than one combined ``t=...,v1=...`` header: each header holds one value
that goes straight into :func:`verify_signature`, so a receiver never writes a parser for a
composite header (the step where hand-written verifiers usually go wrong). The ``v1=`` prefix
names the scheme, so a future scheme can be sent alongside it during a migration without
breaking receivers that only know ``v1``.

The timestamp is part of the signed text, so it cannot be changed without breaking the
signature; rejecting old timestamps (default tolerance five minutes) stops an attacker who
captured one request from replaying it later. Receivers that want exactly-once processing also
deduplicate on the payload's ``event_id`` (deliveries are at-least-once: a try whose answer was
lost is tried again).

How a receiver verifies a request (Flask shown; any framework works the same way)::

    from flask import Flask, abort, request
    from flask_campaign_retry.alerts.signing import verify_signature

    app = Flask(__name__)
    SECRET = "the same value as CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET"

    @app.post("/campaign-alerts")
    def campaign_alert():
        body = request.get_data()  # the raw bytes, before any JSON parsing
        if not verify_signature(
            SECRET,
            request.headers.get("X-Campaign-Retry-Timestamp", ""),
            body,
            request.headers.get("X-Campaign-Retry-Signature", ""),
        ):
            abort(401)
        event = request.get_json()
        ...  # act on event["event"], deduplicating on event["event_id"]
        return "", 204

A receiver without this package computes
``hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()``,
compares it to the part of the signature header after ``v1=`` with ``hmac.compare_digest``, and
checks that the timestamp is within a few minutes of its own clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Campaign-Retry-Timestamp"
SIGNATURE_HEADER = "X-Campaign-Retry-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def compute_signature(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``timestamp + "." + body`` keyed with ``secret``."""
    message = f"{timestamp}.".encode("ascii") + _as_bytes(body)
    return hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_headers(
    secret: str | bytes, body: str | bytes, now: float | None = None
) -> dict[str, str]:
    """The timestamp and signature headers for one try of a request with ``body``."""
    timestamp = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{SCHEME}={compute_signature(secret, timestamp, body)}",
    }


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: str | bytes,
    signature: str,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is a valid ``v1`` signature of ``body`` at a fresh ``timestamp``.

    ``timestamp`` and ``signature`` are the raw header values; ``body`` is the raw request body.
    The comparison is constant-time. Returns False (never raises) for a malformed timestamp or
    signature, for a timestamp more than ``tolerance`` seconds away from ``now`` (default: the
    current time) in either direction, and for a wrong signature. A bare hex signature without
    the ``v1=`` prefix is accepted too.
    """
    if not secret:
        return False
    text = str(timestamp).strip()
    if not text.isascii() or not text.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(text)) > tolerance:
        return False
    given = signature.strip()
    prefix = f"{SCHEME}="
    if given.startswith(prefix):
        given = given[len(prefix) :]
    expected = compute_signature(secret, int(text), body)
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("utf-8"))
