"""The reason a failed preparation gives: who failed (the host's hook, the message, the
database) and what kind of error, never SQL, parameters or recipients' data."""

from __future__ import annotations

from flask_campaign_retry.engine.message_checks import MessageRefused
from flask_campaign_retry.engine.reasons import describe, is_transient
from flask_campaign_retry.engine.recipients import RecipientListError
from flask_campaign_retry.engine.snapshot import LoaderFailed
from flask_campaign_retry.errors import CampaignRetryError, ConfigurationError


class BuilderFailed(CampaignRetryError):
    """The host's message_builder raised, or returned something unusable (cause chained)."""


def _cause(exc: BaseException) -> BaseException:
    return exc.__cause__ if exc.__cause__ is not None else exc


def preparation_reason(exc: BaseException, runs: int) -> str:
    """E.g. "the recipients_loader raised RuntimeError: subscriber service is down"."""
    after = f" (tried {runs} times)" if runs > 1 else ""
    if isinstance(exc, BuilderFailed):
        return f"the message_builder raised {describe(_cause(exc))}"
    if isinstance(exc, MessageRefused):
        return f"the message was refused before sending: {exc}"
    if isinstance(exc, LoaderFailed):
        return f"the recipients_loader raised {describe(_cause(exc))}{after}"
    if isinstance(exc, RecipientListError):
        return f"the recipients_loader yielded an unusable item: {exc}"
    if isinstance(exc, ConfigurationError):
        return f"the provider cannot be used: {exc}"
    if is_transient(exc):
        return (
            f"the database failed while the recipient list was prepared: {describe(exc)}"
            f"{after}; Retry prepares it again"
        )
    return f"preparing the recipient list failed: {describe(exc)}"
