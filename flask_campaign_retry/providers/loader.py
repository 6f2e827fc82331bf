"""Build the configured provider: a built-in name or a dotted path to a custom class."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.base import Provider

BUILT_IN = {
    "mailgun": "flask_campaign_retry.providers.mailgun.provider:MailgunProvider",
    "sandbox": "flask_campaign_retry.providers.sandbox.provider:SandboxProvider",
    "smtp": "flask_campaign_retry.providers.smtp.provider:SMTPProvider",
}
#: Top-level module of an optional dependency -> the extra that installs it.
EXTRA_OF_DEPENDENCY = {"mailgun": "mailgun"}


def _import(path: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(
            f"CAMPAIGN_RETRY_PROVIDER {path!r} is neither a built-in provider "
            f"({', '.join(sorted(BUILT_IN))}) nor a dotted path like 'package.module:Class'."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = next((e for dist, e in EXTRA_OF_DEPENDENCY.items() if dist == exc.name), None)
        if extra is not None:
            raise ConfigurationError(
                f"CAMPAIGN_RETRY_PROVIDER {path!r} needs the {exc.name!r} package: "
                f"pip install 'flask-campaign-retry[{extra}]'."
            ) from exc
        raise ConfigurationError(
            f"CAMPAIGN_RETRY_PROVIDER {path!r}: cannot import {module_name!r} ({exc})."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigurationError(
            f"CAMPAIGN_RETRY_PROVIDER {path!r}: module {module_name!r} has no {attr!r}."
        ) from None


def load_provider(name: str, config: Mapping[str, Any]) -> Provider:
    """Instantiate the provider ``name`` from ``config``.

    A custom class is built with ``from_config(config)`` when it has one, else ``cls(config)``.
    """
    factory = _import(BUILT_IN.get(name, name))
    builder = getattr(factory, "from_config", factory)
    provider = builder(config)
    if not isinstance(provider, Provider):
        raise ConfigurationError(
            f"CAMPAIGN_RETRY_PROVIDER {name!r} built {type(provider).__name__}, which has no "
            "`name` attribute and `send_batch(message, recipients, ref)` method."
        )
    return provider
