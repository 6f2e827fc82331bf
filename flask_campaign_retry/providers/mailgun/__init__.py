"""Everything Mailgun: the SDK provider (retries off, one HTTP request per call), error
classification, the Events API lookup for reconciliation, and the webhook signature.

May import: ``providers.base``, ``statuses`` and ``errors`` only.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``providers.mailgun.MailgunProvider`` , imported on first use."""
    if name == "MailgunProvider":
        from flask_campaign_retry.providers.mailgun.provider import MailgunProvider

        return MailgunProvider
    raise AttributeError(name)
