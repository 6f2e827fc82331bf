"""Blinker signals, sent after the state they describe is committed.

Receivers get the campaign as sender and keyword arguments (``attempt``, ``status``)::

    from flask_campaign_retry import signals

    @signals.campaign_failed.connect
    def alert(campaign, **extra): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blinker import Namespace

from flask_campaign_retry.campaign_fields import fields
from flask_campaign_retry.statuses import EmailStatus

_signals = Namespace()

campaign_sent = _signals.signal("campaign-sent")
campaign_partially_sent = _signals.signal("campaign-partially-sent")
campaign_failed = _signals.signal("campaign-failed")
retry_started = _signals.signal("retry-started")
retries_exhausted = _signals.signal("retries-exhausted")
#: One per batch whose recipients' outcomes were just committed. Sender: the app; keywords
#: ``campaign_id``, ``attempt_id``, ``batch_id``, ``outcomes`` (a list of
#: :class:`RecipientOutcome`). Hosts that keep their own per-recipient rows mirror them here.
recipients_settled = _signals.signal("recipients-settled")


@dataclass(frozen=True)
class RecipientOutcome:
    """The outcome of one recipient as written: status SENT, FAILED, UNCERTAIN or SKIPPED;
    for FAILED the failure kind (transient/permanent/fatal), the provider's code and reason."""

    email: str
    status: str
    failure_kind: str | None
    error_code: int | None
    error_message: str | None


_BY_STATUS = {
    EmailStatus.SENT: campaign_sent,
    EmailStatus.PARTIALLY_SENT: campaign_partially_sent,
    EmailStatus.FAILED: campaign_failed,
}


def emit_campaign_finished(campaign: Any, attempt: Any, status: EmailStatus) -> None:
    """Send the signal matching ``status``, then ``retries_exhausted`` if no attempt is left."""
    signal = _BY_STATUS.get(status)
    if signal is not None:
        signal.send(campaign, attempt=attempt, status=status)
    if (
        status is not EmailStatus.SENT
        and fields(campaign).retry_count >= fields(campaign).max_retries
    ):
        retries_exhausted.send(campaign, attempt=attempt, status=status)
