"""Adopting campaigns a host sent before it installed the extension.

The migration that adds :class:`CampaignMixin` leaves every existing row DRAFT (its server
default), so a campaign the host already sent would offer a Send button. :func:`adopt_sent`
marks as SENT the campaigns a host-given SQL condition selects, among those the extension never
touched (DRAFT, no attempt row), with a dry run that changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.campaign_fields import column_values, columns
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import EmailStatus


@dataclass(frozen=True)
class Adoption:
    """Which campaigns were (or, in a dry run, would be) marked SENT."""

    campaign_ids: list[Any]
    dry_run: bool

    @property
    def count(self) -> int:
        return len(self.campaign_ids)


def adopt_sent(
    state: AppState, sent_where: str | sa.ColumnElement[bool], *, dry_run: bool = False
) -> Adoption:
    """Mark SENT the untouched DRAFT campaigns that ``sent_where`` selects.

    ``sent_where`` is a SQLAlchemy condition on the campaign model, or SQL text over the
    campaign table's columns (e.g. ``"sent_at IS NOT NULL"``). Campaigns with an attempt row are
    never changed: their status is the extension's own record.
    """
    session = state.db.session
    table = state.models.campaign.__table__
    attempts = state.models.attempt.__table__
    condition = sa.text(sent_where) if isinstance(sent_where, str) else sent_where
    if isinstance(sent_where, str) and not sent_where.strip():
        raise ConfigurationError("Give the condition that selects the campaigns already sent.")
    untouched = sa.and_(
        columns(table).status == EmailStatus.DRAFT.value,
        ~sa.exists().where(attempts.c.campaign_id == table.c.id),
        condition,
    )
    try:
        ids = list(
            session.execute(sa.select(table.c.id).where(untouched).order_by(table.c.id)).scalars()
        )
        if ids and not dry_run:
            session.execute(
                sa.update(table)
                .where(table.c.id.in_(ids), columns(table).status == EmailStatus.DRAFT.value)
                .values(column_values(table, status=EmailStatus.SENT.value))
            )
        session.commit()
    except sa.exc.DBAPIError as exc:
        session.rollback()
        raise ConfigurationError(
            f"The condition {sent_where!s} could not be used on table {table.name!r}: "
            f"{type(exc.orig).__name__}. Write it in SQL over that table's columns, "
            'e.g. "sent_at IS NOT NULL".'
        ) from None
    return Adoption(campaign_ids=ids, dry_run=dry_run)
