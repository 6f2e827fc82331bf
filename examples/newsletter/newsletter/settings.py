"""Default configuration. Every key can be overridden with a ``FLASK_``-prefixed environment
variable (``app.config.from_prefixed_env()``), e.g. ``FLASK_CAMPAIGN_RETRY_PROVIDER=mailgun``."""

from __future__ import annotations

import os
import secrets
from typing import Any

#: What the sandbox provider (no email leaves the machine) fails: addresses at
#: bounce.example.com are refused the way Mailgun refuses a bad address, with a 400 naming it.
#: Such failures are permanent: the extension never retries them.
SANDBOX_RULES: list[dict[str, Any]] = [
    {"match": r"@bounce\.example\.com$", "reject_addresses": True},
]


def default_settings(instance_path: str) -> dict[str, Any]:
    """The app's settings before the environment and ``create_app(config)`` override them."""
    return {
        # Signs sessions and CSRF tokens. Set FLASK_SECRET_KEY for anything but the demo: this
        # random default signs everybody out whenever the process restarts.
        "SECRET_KEY": secrets.token_hex(32),
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + os.path.join(instance_path, "newsletter.db"),
        # The sandbox provider accepts everything its rules do not fail. For real email:
        # FLASK_CAMPAIGN_RETRY_PROVIDER=mailgun, FLASK_MAILGUN_API_KEY, FLASK_MAILGUN_DOMAIN.
        "CAMPAIGN_RETRY_PROVIDER": "sandbox",
        "CAMPAIGN_RETRY_SANDBOX_RULES": SANDBOX_RULES,
        # Seconds per simulated provider call, so a send can be watched as it progresses.
        "CAMPAIGN_RETRY_SANDBOX_LATENCY": 1.0,
        # Mailgun takes up to 1,000 recipients a call; small batches make the demo's lists span
        # several calls, so one failing call does not fail a whole list.
        "CAMPAIGN_RETRY_BATCH_SIZE": 50,
        # No CAMPAIGN_RETRY_REDIS_URL: the extension runs its embedded development queue in the
        # web process. create_app() takes REDIS_URL or CAMPAIGN_RETRY_REDIS_URL from the
        # environment; then `flask campaign-retry worker` processes do the sending.
    }
