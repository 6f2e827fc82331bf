"""Send ``signals.recipients_settled`` for a batch whose outcomes were just committed.

Read back from the rows (one SELECT, only when someone listens), so the signal carries exactly
what was written, whatever the provider reported and however the engine wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from flask import current_app

from flask_campaign_retry.signals import RecipientOutcome, recipients_settled
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import RecipientStatus

#: Not settled yet: waiting for another try, or still in flight.
_OPEN = (RecipientStatus.PENDING, RecipientStatus.SENDING)


def announce_settled(
    state: AppState, campaign_id: object, attempt_id: int, batch_id: int, ids: Sequence[int]
) -> None:
    """Emit ``recipients_settled`` for the settled recipients among ``ids`` (no-op when no
    receiver listens to this app or nobody settled: a receiver another app connected for
    itself must not cost this app's batches a query)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not ids or not recipients_settled.has_receivers_for(app):
        return
    r = state.models.recipient.__table__.c
    rows = state.db.session.execute(
        sa.select(r.email, r.status, r.failure_kind, r.error_code, r.error_message)
        .where(r.id.in_(list(ids)), r.status.not_in(_OPEN))
        .order_by(r.id)
    ).all()
    state.db.session.rollback()  # end the read; nothing was written
    if not rows:
        return
    outcomes = [
        RecipientOutcome(
            email=email,
            status=RecipientStatus(status).value,
            failure_kind=None if kind is None else str(getattr(kind, "value", kind)),
            error_code=code,
            error_message=message,
        )
        for email, status, kind, code, message in rows
    ]
    recipients_settled.send(
        app,
        campaign_id=campaign_id,
        attempt_id=attempt_id,
        batch_id=batch_id,
        outcomes=outcomes,
    )
