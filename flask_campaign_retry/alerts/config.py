"""Configuration of the admin webhook beyond the four keys ``config.Settings`` already holds.

``CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS``, ``_SECRET``, ``_THRESHOLD`` and ``_ALLOW_PRIVATE`` are
validated by :func:`flask_campaign_retry.config.load_settings`. The keys below tune delivery;
they are read with ``app.config.get(key, default)`` so an app that never sets them gets the
defaults, and validated by :func:`load_webhook_options`, which also checks the syntax of every
configured URL (``init_app`` should call it so a bad value fails at start-up, not at the first
alert).

``CAMPAIGN_RETRY_ADMIN_WEBHOOK_MAX_TRIES`` (int, 1..50, default 6)
    HTTP tries per delivery before it is given up (logged at ERROR, recorded as ``gave_up``).
``CAMPAIGN_RETRY_ADMIN_WEBHOOK_BACKOFF_BASE`` (seconds as int/float or timedelta, default 10.0)
    The n-th retry waits a random time in [0, min(cap, base * 2^(n-1))] (full jitter).
``CAMPAIGN_RETRY_ADMIN_WEBHOOK_BACKOFF_CAP`` (seconds as int/float or timedelta, default 600.0)
    Longest wait between two tries; must not be below the base.
``CAMPAIGN_RETRY_ADMIN_WEBHOOK_RATE_LIMIT`` (int >= 1, default 30)
    Deliveries per URL per minute; beyond it a delivery waits for a later minute (never dropped).
``CAMPAIGN_RETRY_ADMIN_WEBHOOK_EVENTS`` (iterable of event names, default all six)
    Which events are sent: ``campaign.failed``, ``campaign.partially_sent``,
    ``campaign.retries_exhausted``, ``campaign.repeated_failures``, ``provider.failover``,
    ``provider.recovered``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask_campaign_retry.alerts.targets import validate_webhook_url
from flask_campaign_retry.errors import ConfigurationError

EVENT_FAILED = "campaign.failed"
EVENT_PARTIALLY_SENT = "campaign.partially_sent"
EVENT_RETRIES_EXHAUSTED = "campaign.retries_exhausted"
EVENT_REPEATED_FAILURES = "campaign.repeated_failures"
EVENT_PROVIDER_FAILOVER = "provider.failover"
EVENT_PROVIDER_RECOVERED = "provider.recovered"
ALL_EVENTS: tuple[str, ...] = (
    EVENT_FAILED,
    EVENT_PARTIALLY_SENT,
    EVENT_RETRIES_EXHAUSTED,
    EVENT_REPEATED_FAILURES,
    EVENT_PROVIDER_FAILOVER,
    EVENT_PROVIDER_RECOVERED,
)

MAX_TRIES = "CAMPAIGN_RETRY_ADMIN_WEBHOOK_MAX_TRIES"
BACKOFF_BASE = "CAMPAIGN_RETRY_ADMIN_WEBHOOK_BACKOFF_BASE"
BACKOFF_CAP = "CAMPAIGN_RETRY_ADMIN_WEBHOOK_BACKOFF_CAP"
RATE_LIMIT = "CAMPAIGN_RETRY_ADMIN_WEBHOOK_RATE_LIMIT"
EVENTS = "CAMPAIGN_RETRY_ADMIN_WEBHOOK_EVENTS"
URLS = "CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS"

WEBHOOK_DEFAULTS: dict[str, Any] = {
    MAX_TRIES: 6,
    BACKOFF_BASE: 10.0,
    BACKOFF_CAP: 600.0,
    RATE_LIMIT: 30,
    EVENTS: ALL_EVENTS,
}


@dataclass(frozen=True)
class WebhookOptions:
    """The validated delivery options of one app."""

    max_tries: int
    backoff_base: float
    backoff_cap: float
    rate_limit: int
    events: frozenset[str]


def _get(config: Mapping[str, Any], key: str) -> Any:
    return config.get(key, WEBHOOK_DEFAULTS[key])


def _int(config: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = _get(config, key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"{key} must be an integer between {low} and {high}, got {value!r}."
        )
    return value


def _seconds(config: Mapping[str, Any], key: str) -> float:
    value = _get(config, key)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigurationError(
            f"{key} must be a non-negative number of seconds or a timedelta, got {value!r}."
        )
    return float(value)


def _events(config: Mapping[str, Any]) -> frozenset[str]:
    value = _get(config, EVENTS)
    names = [value] if isinstance(value, str) else value
    try:
        chosen = frozenset(names)
    except TypeError as exc:
        raise ConfigurationError(
            f"{EVENTS} must be a list of event names from {list(ALL_EVENTS)}, got {value!r}."
        ) from exc
    unknown = sorted(str(name) for name in chosen - set(ALL_EVENTS))
    if unknown:
        raise ConfigurationError(
            f"{EVENTS} holds unknown event names {unknown}; choose from {list(ALL_EVENTS)}."
        )
    return chosen


def load_webhook_options(config: Mapping[str, Any]) -> WebhookOptions:
    """Validate the admin-webhook delivery keys and the URLs' syntax of ``config``.

    Raises ConfigurationError with a message that says how to fix the value.
    """
    urls = config.get(URLS) or ()
    for url in [urls] if isinstance(urls, str) else urls:
        validate_webhook_url(url, URLS)
    base = _seconds(config, BACKOFF_BASE)
    cap = _seconds(config, BACKOFF_CAP)
    if cap < base:
        raise ConfigurationError(
            f"{BACKOFF_CAP} ({cap}) must not be below {BACKOFF_BASE} ({base})."
        )
    return WebhookOptions(
        max_tries=_int(config, MAX_TRIES, 1, 50),
        backoff_base=base,
        backoff_cap=cap,
        rate_limit=_int(config, RATE_LIMIT, 1, 100_000),
        events=_events(config),
    )
