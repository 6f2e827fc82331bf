"""Write many one-recipient outcomes (a provider that answers per recipient, one message id
each): the accepted ones in one UPDATE (their ids by CASE), the others in one executemany
(usually few), instead of one statement per recipient."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.engine.submission import GroupOutcome
from flask_campaign_retry.providers.base import ProviderError
from flask_campaign_retry.statuses import FailureKind, RecipientStatus


def _status(error: ProviderError, deferred: bool) -> RecipientStatus:
    if deferred:
        return RecipientStatus.PENDING  # waits for the batch's next try, keeping its error
    if error.kind is FailureKind.UNCERTAIN:
        return RecipientStatus.UNCERTAIN
    return RecipientStatus.FAILED


def write_single_rows(
    session: Any,
    recipients: sa.Table,
    groups: Sequence[GroupOutcome],
    is_deferred: Callable[[GroupOutcome], bool],
    now: datetime,
) -> None:
    """Apply ``groups`` (each of one recipient) to rows this run still holds (PENDING under
    its claim)."""
    r = recipients.c
    accepted = {g.recipients[0].id: g.message_id for g in groups if g.error is None}
    if accepted:
        # One statement: each row's own message id picked by a CASE on its id.
        session.execute(
            sa.update(recipients)
            .where(r.id.in_(list(accepted)), r.status == RecipientStatus.PENDING)
            .values(
                status=RecipientStatus.SENT,
                provider_message_id=sa.case(accepted, value=r.id),
                sent_at=now,
                failure_kind=None,
                error_code=None,
                error_message=None,
                submissions=r.submissions + 1,
            )
        )
    failed = [
        {
            "rid": g.recipients[0].id,
            "st": _status(error, is_deferred(g)),
            "kind": error.kind.value,
            "code": error.code,
            "msg": error.message[:500],
        }
        for g in groups
        if (error := g.error) is not None
    ]
    if failed:
        held = sa.and_(r.id == sa.bindparam("rid"), r.status == RecipientStatus.PENDING)
        session.execute(
            sa.update(recipients)
            .where(held)
            .values(
                status=sa.bindparam("st"),
                failure_kind=sa.bindparam("kind"),
                error_code=sa.bindparam("code"),
                error_message=sa.bindparam("msg"),
                submissions=r.submissions + 1,
            ),
            failed,
        )
