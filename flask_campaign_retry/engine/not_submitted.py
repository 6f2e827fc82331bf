"""An exception a provider raised instead of a classified :class:`ProviderError`.

A provider classifies every failure of its request (network, HTTP answer) as a ProviderError;
anything else it raises comes from its own code before a request left the process (a form it
could not build, a value of the wrong type). Nothing was submitted, so the recipients are not
UNCERTAIN: the error is FATAL (the same message fails the same way again), the attempt stops,
and once the cause is fixed a retry resends to them.
"""

from __future__ import annotations

import logging

from flask_campaign_retry.engine.reasons import describe
from flask_campaign_retry.providers.base import Provider, ProviderError
from flask_campaign_retry.statuses import FailureKind

log = logging.getLogger("flask_campaign_retry")


def not_submitted(provider: Provider, exc: Exception) -> ProviderError:
    """The FATAL "nothing was submitted" error standing for ``exc`` (logged with its trace)."""
    name = getattr(provider, "name", type(provider).__name__)
    log.error("the %s provider raised before sending anything", name, exc_info=exc)
    return ProviderError(
        FailureKind.FATAL,
        f"the {name} provider raised {describe(exc)} before sending; nothing was submitted",
    )
