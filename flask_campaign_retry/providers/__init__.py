"""Email providers: the interface, and the built-in Mailgun and sandbox providers."""

from .base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    LookupOutcome,
    OutgoingMessage,
    Provider,
    ProviderError,
    RecipientLookup,
    ReconcilingProvider,
)
from .loader import load_provider

__all__ = [
    "Accepted",
    "BatchRecipient",
    "BatchRef",
    "LookupOutcome",
    "OutgoingMessage",
    "Provider",
    "ProviderError",
    "RecipientLookup",
    "ReconcilingProvider",
    "load_provider",
]
