"""flask-campaign-retry: recover failed email campaign sends in Flask apps."""

from . import signals
from ._version import __version__
from .errors import (
    CampaignRetryError,
    ConfigurationError,
    NotInitializedError,
    TransitionRefused,
)
from .extension import CampaignRetry
from .mixins import CampaignMixin
from .providers.base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    Provider,
    ProviderError,
)
from .statuses import EmailStatus, FailureKind, RecipientStatus
from .webhook_signing import verify_signature

__all__ = [
    "Accepted",
    "BatchRecipient",
    "BatchRef",
    "CampaignMixin",
    "CampaignRetry",
    "CampaignRetryError",
    "ConfigurationError",
    "EmailStatus",
    "FailureKind",
    "NotInitializedError",
    "OutgoingMessage",
    "Provider",
    "ProviderError",
    "RecipientStatus",
    "TransitionRefused",
    "__version__",
    "signals",
    "verify_signature",
]
