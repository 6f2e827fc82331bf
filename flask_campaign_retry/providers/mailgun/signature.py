"""Is a Mailgun webhook request genuine and new? Signature, timestamp age, replayed tokens.

Mailgun signs every webhook with ``HMAC-SHA256(signing key, timestamp + token)`` (no separator,
hex digest) and puts ``timestamp``, ``token`` and ``signature`` in the JSON body. The key is the
*webhook signing key* (``MAILGUN_WEBHOOK_SIGNING_KEY``), not the API key.

- The digest is compared with :func:`hmac.compare_digest` (constant time).
- The timestamp must be no older than ``CAMPAIGN_RETRY_WEBHOOK_TOLERANCE`` (default 12 hours:
  Mailgun retries a webhook for about 8 hours, so a strict window would refuse its own late
  deliveries) and no more than :data:`FUTURE_SKEW_SECONDS` ahead of our clock.
- A token is accepted once: :class:`ReplayCache` claims it in Redis with ``SET NX`` and a
  lifetime that outlasts the timestamp window, so a replay is refused while it would still
  look fresh and is refused for its age after that.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from redis import Redis

from flask_campaign_retry.errors import ConfigurationError

SIGNING_KEY_CONFIG: Final = "MAILGUN_WEBHOOK_SIGNING_KEY"
TOLERANCE_CONFIG: Final = "CAMPAIGN_RETRY_WEBHOOK_TOLERANCE"
DEFAULT_TOLERANCE_SECONDS: Final = 12 * 3600.0
#: How far ahead of our clock a signature timestamp may be (clock skew between hosts).
FUTURE_SKEW_SECONDS: Final = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class WebhookSignature:
    """The ``signature`` object of a webhook body, checked for shape (not yet for validity)."""

    timestamp: str
    token: str
    signature: str

    @classmethod
    def parse(cls, raw: Any) -> WebhookSignature | None:
        """The signature block, or None when it is missing or malformed."""
        if not isinstance(raw, Mapping):
            return None
        timestamp, token, signature = (raw.get(k) for k in ("timestamp", "token", "signature"))
        if isinstance(timestamp, int) and not isinstance(timestamp, bool):
            timestamp = str(timestamp)
        if not (
            isinstance(timestamp, str)
            and isinstance(token, str)
            and isinstance(signature, str)
            and _TIMESTAMP.fullmatch(timestamp)
            and _TOKEN.fullmatch(token)
            and _DIGEST.fullmatch(signature)
        ):
            return None
        return cls(timestamp, token, signature.lower())

    @property
    def seconds(self) -> int:
        """The signing time, epoch seconds."""
        return int(self.timestamp)


def sign(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's signature: hex HMAC-SHA256 of ``timestamp + token`` under the signing key."""
    message = (timestamp + token).encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def signature_valid(signing_key: str, signature: WebhookSignature) -> bool:
    """True when ``signature`` was made with ``signing_key`` (constant-time comparison)."""
    expected = sign(signing_key, signature.timestamp, signature.token)
    return hmac.compare_digest(expected, signature.signature)


def timestamp_fresh(signature: WebhookSignature, now: float, tolerance: float) -> bool:
    """True when the signing time is within ``tolerance`` seconds before ``now`` (and not more
    than :data:`FUTURE_SKEW_SECONDS` after it)."""
    age = now - signature.seconds
    return -FUTURE_SKEW_SECONDS <= age <= tolerance


def webhook_tolerance(config: Mapping[str, Any]) -> float:
    """``CAMPAIGN_RETRY_WEBHOOK_TOLERANCE`` in seconds (a number or a timedelta, > 0)."""
    value = config.get(TOLERANCE_CONFIG, DEFAULT_TOLERANCE_SECONDS)
    if value is None:
        return DEFAULT_TOLERANCE_SECONDS
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(
            f"{TOLERANCE_CONFIG} must be a positive number of seconds or a timedelta "
            f"(default 12 hours), got {value!r}."
        )
    return float(value)


class ReplayCache:
    """Remembers the tokens of accepted webhooks in Redis, each until its timestamp is stale."""

    def __init__(self, connection: Redis, namespace: str) -> None:
        self.connection = connection
        self.prefix = f"campaign_retry:{namespace}:mailgun-webhook-token:"

    def claim(self, signature: WebhookSignature, now: float, tolerance: float) -> bool:
        """True the first time this token is seen; False for a replay. Atomic (``SET NX``)."""
        ttl = max(1, math.ceil(signature.seconds + tolerance - now) + 1)
        return bool(self.connection.set(self.prefix + signature.token, b"1", nx=True, ex=ttl))

    def release(self, signature: WebhookSignature) -> None:
        """Forget a claimed token, so that Mailgun's retry of a request we failed is accepted."""
        self.connection.delete(self.prefix + signature.token)
