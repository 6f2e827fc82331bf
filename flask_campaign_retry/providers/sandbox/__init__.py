"""The sandbox provider for demos and tests: Mailgun's behaviour without a network, with
failures scripted by rules, and the records of what it accepted.

May import: ``providers.base``, ``providers.mailgun`` (to answer exactly as Mailgun would),
``statuses`` and ``errors`` only.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``providers.sandbox.SandboxProvider`` , imported on first use."""
    if name == "SandboxProvider":
        from flask_campaign_retry.providers.sandbox.provider import SandboxProvider

        return SandboxProvider
    raise AttributeError(name)
