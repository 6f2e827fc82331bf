"""``CampaignMixin``: the columns the extension needs on the host's own campaign table.

Once released, a column here is never renamed or retyped: hosts carry these columns in their own
migration history. Every NOT NULL column has a server default, so the migration that adds the
mixin to a campaign table that already has rows works as generated (existing rows start as
DRAFT with no retries used; ``flask campaign-retry adopt`` marks the ones already sent).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from flask_campaign_retry.columns import EMAIL_STATUS
from flask_campaign_retry.statuses import EmailStatus

#: ``max_retries`` of rows inserted outside the ORM (and of rows that existed before the mixin).
DEFAULT_MAX_RETRIES = 3


def _default_max_retries() -> int:
    """``CAMPAIGN_RETRY_MAX_RETRIES`` of the current app, or 3 outside an app context."""
    if has_app_context():
        value = current_app.config.get("CAMPAIGN_RETRY_MAX_RETRIES", DEFAULT_MAX_RETRIES)
        if isinstance(value, int):
            return value
    return DEFAULT_MAX_RETRIES


def new_incarnation() -> str:
    """A random marker for one campaign row (see ``CampaignMixin.retry_incarnation``)."""
    return uuid.uuid4().hex


class CampaignMixin:
    """Add to the host's campaign model: ``class Campaign(CampaignMixin, db.Model)``.

    The host keeps its own primary key (``id``) and content columns.
    """

    __tablename__: Any

    status: Mapped[EmailStatus] = mapped_column(
        EMAIL_STATUS,
        nullable=False,
        default=EmailStatus.DRAFT,
        server_default=EmailStatus.DRAFT.value,
        index=True,
    )
    failure_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    retry_count: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    max_retries: Mapped[int] = mapped_column(
        sa.Integer,
        nullable=False,
        default=_default_max_retries,
        server_default=str(DEFAULT_MAX_RETRIES),
    )
    successful_sends: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    total_recipients: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    delivered_count: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    next_auto_retry_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    current_attempt_id: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    #: When a SCHEDULED campaign starts (naive UTC); kept after the start as a record.
    scheduled_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    #: Random per campaign row: the extension's rows carry it, so rows left behind by a deleted
    #: campaign whose id the database reuses are recognised as stale and never sent to.
    retry_incarnation: Mapped[str | None] = mapped_column(
        sa.String(32), nullable=True, default=new_incarnation
    )

    @declared_attr
    def cloned_from_id(cls) -> Mapped[int | None]:
        return mapped_column(
            sa.Integer,
            sa.ForeignKey(
                f"{cls.__tablename__}.id",
                ondelete="SET NULL",
                name=f"fk_{cls.__tablename__}_cloned_from_id",
            ),
            nullable=True,
        )
