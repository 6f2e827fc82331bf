"""Email providers: the interface, and the built-in Mailgun and sandbox providers."""

from .base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    Provider,
    ProviderError,
)
from .loader import load_provider

__all__ = [
    "Accepted",
    "BatchRecipient",
    "BatchRef",
    "OutgoingMessage",
    "Provider",
    "ProviderError",
    "load_provider",
]
