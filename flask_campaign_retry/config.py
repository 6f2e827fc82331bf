"""Configuration keys, their defaults, and validation into a typed settings object.

Every key is documented in README.md ("Configuration"). Defaults are applied to
``app.config`` with ``setdefault`` so the host sees the effective values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.smtp.settings import SMTPSettings

MAILGUN_BATCH_LIMIT = 1000

DEFAULTS: dict[str, Any] = {
    "CAMPAIGN_RETRY_WINDOW": timedelta(hours=24),
    "CAMPAIGN_RETRY_MAX_RETRIES": 3,
    "CAMPAIGN_RETRY_BATCH_SIZE": MAILGUN_BATCH_LIMIT,
    "CAMPAIGN_RETRY_BACKOFF_BASE": 10.0,
    "CAMPAIGN_RETRY_BACKOFF_CAP": 600.0,
    "CAMPAIGN_RETRY_BATCH_MAX_TRIES": 5,
    "CAMPAIGN_RETRY_AUTO_RETRY": True,
    "CAMPAIGN_RETRY_PROVIDER": "mailgun",
    "CAMPAIGN_RETRY_REDIS_URL": None,
    "CAMPAIGN_RETRY_QUEUE": "campaign_retry",
    "CAMPAIGN_RETRY_JOB_TIMEOUT": 600,
    "CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS": 60.0,
    "CAMPAIGN_RETRY_LEASE_SECONDS": 900,
    "CAMPAIGN_RETRY_CONNECT_TIMEOUT": 5.0,
    "CAMPAIGN_RETRY_READ_TIMEOUT": 30.0,
    "CAMPAIGN_RETRY_URL_PREFIX": "/campaigns",
    "CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS": (),
    "CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET": None,
    "CAMPAIGN_RETRY_ADMIN_WEBHOOK_THRESHOLD": 3,
    "CAMPAIGN_RETRY_ADMIN_WEBHOOK_ALLOW_PRIVATE": False,
    "MAILGUN_API_URL": "https://api.mailgun.net",
    "MAILGUN_WEBHOOK_SIGNING_KEY": None,
    "CAMPAIGN_RETRY_WEBHOOK_TOLERANCE": 12 * 3600.0,
    "CAMPAIGN_RETRY_RECONCILE_SETTLE_SECONDS": 1800.0,
    "CAMPAIGN_RETRY_SANDBOX_RULES": (),
    "CAMPAIGN_RETRY_SANDBOX_LATENCY": 0.0,
    "CAMPAIGN_RETRY_SCHEDULE_GRACE": timedelta(hours=1),
    "CAMPAIGN_RETRY_FALLBACK_PROVIDER": None,
    "CAMPAIGN_RETRY_BREAKER_THRESHOLD": 5,
    "CAMPAIGN_RETRY_BREAKER_COOLDOWN": 60.0,
    "CAMPAIGN_RETRY_CASEFOLD_DEDUPE": True,
}

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one app."""

    window: timedelta
    max_retries: int
    batch_size: int
    backoff_base: float
    backoff_cap: float
    batch_max_tries: int
    auto_retry: bool
    provider: str
    redis_url: str | None
    queue_name: str
    job_timeout: int
    lease_seconds: int
    url_prefix: str
    admin_webhook_urls: tuple[str, ...]
    admin_webhook_secret: str | None
    admin_webhook_threshold: int
    admin_webhook_allow_private: bool
    schedule_grace: timedelta = timedelta(hours=1)
    fallback_provider: str | None = None
    breaker_threshold: int = 5
    breaker_cooldown: float = 60.0
    #: Recipients whose addresses differ only in case are one recipient (the first one loaded).
    casefold_dedupe: bool = True
    #: How long a batch job keeps claiming further batches of its attempt (0: one batch).
    batch_chain_seconds: float = 60.0


def _int(config: Mapping[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{key} must be an integer, got {value!r}.")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{key} must be {bound}, got {value}.")
    return value


def _seconds(config: Mapping[str, Any], key: str, minimum: float = 0.0) -> float:
    value = config[key]
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"{key} must be a number of seconds or a timedelta, got {value!r}."
        )
    if value < minimum:
        raise ConfigurationError(f"{key} must be at least {minimum} seconds, got {value}.")
    return float(value)


def _bool(config: Mapping[str, Any], key: str) -> bool:
    value = config[key]
    if not isinstance(value, bool):
        raise ConfigurationError(f"{key} must be True or False, got {value!r}.")
    return value


def _urls(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config[key]
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    urls = tuple(value)
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ConfigurationError(f"{key} must hold http(s) URLs, got {url!r}.")
    return urls


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate the ``CAMPAIGN_RETRY_*`` keys of ``config`` (defaults already applied)."""
    window = config["CAMPAIGN_RETRY_WINDOW"]
    if not isinstance(window, timedelta):
        window = timedelta(seconds=_seconds(config, "CAMPAIGN_RETRY_WINDOW", 1.0))
    elif window.total_seconds() <= 0:
        raise ConfigurationError(f"CAMPAIGN_RETRY_WINDOW must be positive, got {window}.")
    queue_name = config["CAMPAIGN_RETRY_QUEUE"]
    if not isinstance(queue_name, str) or not _QUEUE_NAME.match(queue_name):
        raise ConfigurationError(
            "CAMPAIGN_RETRY_QUEUE must be 1-100 characters of letters, digits, '_', '.', ':' "
            f"or '-', got {queue_name!r}."
        )
    redis_url = config["CAMPAIGN_RETRY_REDIS_URL"]
    if redis_url is not None and (
        not isinstance(redis_url, str)
        or not redis_url.startswith(("redis://", "rediss://", "unix://"))
    ):
        raise ConfigurationError(
            "CAMPAIGN_RETRY_REDIS_URL must be a redis://, rediss:// or unix:// URL "
            f"(or None for the embedded development queue), got {redis_url!r}."
        )
    provider = config["CAMPAIGN_RETRY_PROVIDER"]
    if not isinstance(provider, str) or not provider:
        raise ConfigurationError(
            "CAMPAIGN_RETRY_PROVIDER must be 'mailgun', 'sandbox' or a dotted path "
            f"'package.module:Class', got {provider!r}."
        )
    if provider == "smtp":
        SMTPSettings.from_config(config)  # MAIL_* / CAMPAIGN_RETRY_SMTP_*: fail at start-up
    prefix = config["CAMPAIGN_RETRY_URL_PREFIX"]
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
        raise ConfigurationError(
            f"CAMPAIGN_RETRY_URL_PREFIX must be empty or start with '/', got {prefix!r}."
        )
    backoff_base = _seconds(config, "CAMPAIGN_RETRY_BACKOFF_BASE", 0.0)
    backoff_cap = _seconds(config, "CAMPAIGN_RETRY_BACKOFF_CAP", 0.0)
    if backoff_cap < backoff_base:
        raise ConfigurationError(
            f"CAMPAIGN_RETRY_BACKOFF_CAP ({backoff_cap}) must not be below "
            f"CAMPAIGN_RETRY_BACKOFF_BASE ({backoff_base})."
        )
    secret = config["CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET"]
    urls = _urls(config, "CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS")
    if urls and not secret:
        raise ConfigurationError(
            "CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS is set but CAMPAIGN_RETRY_ADMIN_WEBHOOK_SECRET is "
            "not: set a secret so receivers can verify the signature."
        )
    fallback = config.get("CAMPAIGN_RETRY_FALLBACK_PROVIDER")
    if fallback is not None and (not isinstance(fallback, str) or not fallback):
        raise ConfigurationError(
            "CAMPAIGN_RETRY_FALLBACK_PROVIDER must be a provider name ('mailgun', 'sandbox', ...) "
            f"or a dotted path 'package.module:Class', or None for no failover; got {fallback!r}."
        )
    if fallback is not None and fallback == provider:
        raise ConfigurationError(
            f"CAMPAIGN_RETRY_FALLBACK_PROVIDER is {fallback!r}, the same as "
            "CAMPAIGN_RETRY_PROVIDER: name a different provider, or set it to None."
        )
    return Settings(
        window=window,
        max_retries=_int(config, "CAMPAIGN_RETRY_MAX_RETRIES", 0, 100),
        batch_size=_int(config, "CAMPAIGN_RETRY_BATCH_SIZE", 1, MAILGUN_BATCH_LIMIT),
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
        batch_max_tries=_int(config, "CAMPAIGN_RETRY_BATCH_MAX_TRIES", 1, 100),
        auto_retry=_bool(config, "CAMPAIGN_RETRY_AUTO_RETRY"),
        provider=provider,
        redis_url=redis_url,
        queue_name=queue_name,
        job_timeout=_int(config, "CAMPAIGN_RETRY_JOB_TIMEOUT", 10),
        lease_seconds=_int(config, "CAMPAIGN_RETRY_LEASE_SECONDS", 30),
        url_prefix=prefix.rstrip("/"),
        admin_webhook_urls=urls,
        admin_webhook_secret=secret,
        admin_webhook_threshold=_int(config, "CAMPAIGN_RETRY_ADMIN_WEBHOOK_THRESHOLD", 1),
        admin_webhook_allow_private=_bool(config, "CAMPAIGN_RETRY_ADMIN_WEBHOOK_ALLOW_PRIVATE"),
        schedule_grace=timedelta(seconds=_seconds(config, "CAMPAIGN_RETRY_SCHEDULE_GRACE", 0.0)),
        fallback_provider=fallback,
        breaker_threshold=_int(config, "CAMPAIGN_RETRY_BREAKER_THRESHOLD", 1, 1000),
        breaker_cooldown=_seconds(config, "CAMPAIGN_RETRY_BREAKER_COOLDOWN", 1.0),
        casefold_dedupe=_bool(config, "CAMPAIGN_RETRY_CASEFOLD_DEDUPE"),
        batch_chain_seconds=_seconds(config, "CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS", 0.0),
    )
