"""Mailgun's settings from the app config: API URL (US or EU region), timeouts, required keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlparse

from flask_campaign_retry.errors import ConfigurationError

US_API_URL: Final = "https://api.mailgun.net"
EU_API_URL: Final = "https://api.eu.mailgun.net"
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_READ_TIMEOUT: Final = 30.0
_SDK_TIMEOUT_LIMIT = 300.0  # the SDK refuses larger timeouts
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


def normalize_api_url(raw: str) -> str:
    """``MAILGUN_API_URL`` as the SDK wants it: scheme and host, no trailing ``/`` or ``/v3``.

    Plain ``http`` is allowed only for ``127.0.0.1``/``localhost`` (test servers), as in the SDK.
    """
    url = raw.strip().rstrip("/")
    url = url.removesuffix("/v3").rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ConfigurationError(
            f"MAILGUN_API_URL must be a URL like {US_API_URL!r} (US) or {EU_API_URL!r} (EU), "
            f"got {raw!r}."
        )
    if parsed.scheme == "http" and parsed.hostname not in _LOCAL_HOSTS:
        raise ConfigurationError(
            f"MAILGUN_API_URL must use https (plain http is only for 127.0.0.1), got {raw!r}."
        )
    if parsed.username or parsed.password:
        raise ConfigurationError(
            "MAILGUN_API_URL must not contain credentials; put the key in MAILGUN_API_KEY."
        )
    return url


def timeout_setting(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{key} must be a number of seconds, got {value!r}.")
    if not 0 < value <= _SDK_TIMEOUT_LIMIT:
        raise ConfigurationError(f"{key} must be > 0 and <= 300 seconds, got {value}.")
    return float(value)


def required(config: Mapping[str, Any], key: str, how: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{key} is not set: {how}")
    return value.strip()
