"""flask-campaign-retry: recover failed email campaign sends in Flask apps."""

from flask_campaign_retry import signals
from flask_campaign_retry._version import __version__
from flask_campaign_retry.alerts.signing import verify_signature
from flask_campaign_retry.errors import (
    CampaignRetryError,
    ConfigurationError,
    InvalidScheduleTime,
    NotInitializedError,
    QueueUnavailable,
    TransitionRefused,
)
from flask_campaign_retry.extension import CampaignRetry
from flask_campaign_retry.mixins import CampaignMixin, campaign_mixin
from flask_campaign_retry.providers.base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    Provider,
    ProviderError,
    RecipientOutcome,
    RecipientResult,
    RecipientResults,
)
from flask_campaign_retry.statuses import EmailStatus, FailureKind, RecipientStatus

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
    "InvalidScheduleTime",
    "NotInitializedError",
    "OutgoingMessage",
    "Provider",
    "ProviderError",
    "QueueUnavailable",
    "RecipientOutcome",
    "RecipientResult",
    "RecipientResults",
    "RecipientStatus",
    "TransitionRefused",
    "__version__",
    "campaign_mixin",
    "signals",
    "verify_signature",
]
