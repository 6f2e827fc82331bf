"""Exceptions the extension raises to host code. Each message says how to fix the problem."""

from __future__ import annotations


class CampaignRetryError(Exception):
    """Base class of every error raised by flask-campaign-retry."""


class ConfigurationError(CampaignRetryError):
    """A configuration value or a hook is missing or invalid (raised by ``init_app``)."""


class NotInitializedError(CampaignRetryError, RuntimeError):
    """The extension was used with an app it was not initialised on, or outside an app context."""


class TransitionRefused(CampaignRetryError):
    """A campaign could not move to the requested state; ``reason`` says why in plain words.

    ``code`` is a stable machine-readable token (e.g. ``already_sending``, ``window_expired``).
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class InvalidScheduleTime(CampaignRetryError, ValueError):
    """A time to schedule a campaign at is unparsable, has no time zone, or is not in the
    future; the message says which and shows an accepted form."""


class QueueUnavailable(CampaignRetryError):
    """The job queue (Redis) could not be reached when work had to be queued.

    Nothing was changed: the campaign is as it was before the call. Try again once Redis is
    back (the routes answer 503 with ``code`` ``queue_unavailable``).
    """

    code = "queue_unavailable"
    reason = "The queue is unavailable, try again in a moment. Nothing was changed."

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.reason + (f" ({detail})" if detail else ""))
