"""``CampaignMixin``: the columns the extension needs on the host's own campaign table.

Once released, a column here is never renamed or retyped: hosts carry these columns in their own
migration history. Every NOT NULL column has a server default, so the migration that adds the
mixin to a campaign table that already has rows works as generated (existing rows start as
DRAFT with no retries used; ``flask campaign-retry adopt`` marks the ones already sent).

``campaign_mixin(status="send_status", ...)`` is the same mixin with some fields under the
host's names (for a table that already has a ``status`` of its own); the package reaches the
fields through ``campaign_fields``, whatever their names.
"""

from __future__ import annotations

import keyword
import uuid
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from flask_campaign_retry.campaign_fields import CAMPAIGN_FIELDS, COLUMN_INFO_KEY, NAMES_ATTRIBUTE
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
    def cloned_from_id(cls) -> Mapped[Any]:
        # No type of its own: a foreign key column takes the campaign key's type (INTEGER,
        # BIGINT, UUID, VARCHAR...), so PostgreSQL accepts the constraint whatever the key.
        return mapped_column(
            sa.ForeignKey(
                f"{cls.__tablename__}.id",
                ondelete="SET NULL",
                name=f"fk_{cls.__tablename__}_cloned_from_id",
            ),
            nullable=True,
        )


def campaign_mixin(**names: str) -> type:
    """``CampaignMixin`` with some fields under the host's names, attributes and columns alike.

    ``class Campaign(campaign_mixin(status="send_status"), db.Model)`` keeps the host's own
    ``status`` column and gives the extension ``send_status``. Keys are the mixin's field names
    (``CampaignMixin``'s attributes); with none renamed this is ``CampaignMixin`` itself. The
    class records the renames in ``__campaign_retry_columns__``.
    """
    unknown = sorted(set(names) - set(CAMPAIGN_FIELDS))
    if unknown:
        raise TypeError(
            f"campaign_mixin() got unknown field(s) {', '.join(unknown)}; "
            f"the fields are: {', '.join(CAMPAIGN_FIELDS)}."
        )
    for field, name in names.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise TypeError(f"campaign_mixin({field}=...) must be a column name, got {name!r}.")
    renames = {field: name for field, name in names.items() if name != field}
    if not renames:
        return CampaignMixin
    final = {field: renames.get(field, field) for field in CAMPAIGN_FIELDS}
    taken: dict[str, str] = {}
    for field, name in final.items():
        if name in taken:
            hint = f": give {name} another name too" if name in CAMPAIGN_FIELDS else ""
            raise ValueError(
                f"campaign_mixin(): {field} and {taken[name]} would both be named {name!r}{hint}."
            )
        taken[name] = field
    attributes: dict[str, Any] = {
        "__doc__": f"CampaignMixin with renamed fields {renames}.",
        "__module__": __name__,
        "__qualname__": f"campaign_mixin({', '.join(f'{k}={v!r}' for k, v in renames.items())})",
        NAMES_ATTRIBUTE: MappingProxyType(renames),
        "__annotations__": {},
    }
    for field in CAMPAIGN_FIELDS:
        source = vars(CampaignMixin)[field]
        if field == "cloned_from_id":
            attributes[final[field]] = declared_attr(_cloned_from(final[field]))
        else:
            column = source._copy()  # a fresh MappedColumn, as declarative copies a mixin's
            column.column.info[COLUMN_INFO_KEY] = field
            attributes[final[field]] = column
    return type("CampaignMixin", (), attributes)


def _cloned_from(name: str) -> Any:
    def cloned_from(cls: Any) -> Mapped[Any]:
        column = vars(CampaignMixin)["cloned_from_id"].fget(cls)
        column.column.info[COLUMN_INFO_KEY] = "cloned_from_id"
        return column  # type: ignore[no-any-return]

    cloned_from.__name__ = name
    return cloned_from
