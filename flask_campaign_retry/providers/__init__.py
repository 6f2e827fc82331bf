"""Email providers: the interface, the loader, and the built-in Mailgun and sandbox providers.

The lowest layer: may import ``statuses`` and ``errors`` only, never ``engine``, ``web`` or any
other subsystem, so a custom provider depends on nothing but this interface.
"""

from flask_campaign_retry.providers.base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    LookupOutcome,
    OutgoingMessage,
    Provider,
    ProviderError,
    RecipientLookup,
    RecipientOutcome,
    RecipientResult,
    RecipientResults,
    ReconcilingProvider,
)
from flask_campaign_retry.providers.loader import load_provider

__all__ = [
    "Accepted",
    "BatchRecipient",
    "BatchRef",
    "LookupOutcome",
    "OutgoingMessage",
    "Provider",
    "ProviderError",
    "RecipientLookup",
    "RecipientOutcome",
    "RecipientResult",
    "RecipientResults",
    "ReconcilingProvider",
    "load_provider",
]
