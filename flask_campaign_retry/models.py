"""The extension's own tables, bound to the host's ``db`` and its campaign model.

They are declared on the host's ``db.Model`` so they land in the host's metadata and its own
Flask-Migrate history (no Alembic branch of ours). They are built once per campaign model class:
every app that uses the same ``db`` and model shares the same mapped classes, just as the host's
own models are shared.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from flask_campaign_retry.campaign_fields import columns
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.columns import RECIPIENT_STATUS, SHORT_TEXT, BigId
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.statuses import BatchStatus, RecipientStatus

TABLE_PREFIX = "campaign_retry"


@dataclass(frozen=True)
class TrackingModels:
    """The mapped classes the engine works with."""

    campaign: Any
    recipient: Any
    batch: Any
    attempt: Any


_built: weakref.WeakKeyDictionary[type, TrackingModels] = weakref.WeakKeyDictionary()


def tracking_models(db: Any, campaign_model: type) -> TrackingModels:
    """Return the tracking models for ``campaign_model``, declaring them on first use."""
    models = _built.get(campaign_model)
    if models is None:
        models = _declare(db, campaign_model)
        _built[campaign_model] = models
    return models


def _campaign_fk(campaign_model: type) -> tuple[str, sa.types.TypeEngine[Any]]:
    table = getattr(campaign_model, "__table__", None)
    if table is None:
        raise ConfigurationError(
            f"{campaign_model.__name__} is not a mapped table: pass a db.Model subclass "
            "with CampaignMixin as campaign_model."
        )
    keys = list(table.primary_key.columns)
    if len(keys) != 1:
        raise ConfigurationError(
            f"{campaign_model.__name__} must have a single-column primary key, it has {len(keys)}."
        )
    return f"{table.name}.{keys[0].name}", keys[0].type


def _declare(db: Any, campaign_model: type) -> TrackingModels:
    campaign_ref, campaign_id_type = _campaign_fk(campaign_model)
    p = TABLE_PREFIX

    class CampaignAttempt(db.Model):  # type: ignore[misc]
        """One row per send attempt: initial, manual retry or automatic retry."""

        __tablename__ = f"{p}_attempt"
        __table_args__ = (
            sa.UniqueConstraint("campaign_id", "number", name=f"uq_{p}_attempt_campaign_number"),
        )

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        campaign_id: Mapped[Any] = mapped_column(
            campaign_id_type,
            sa.ForeignKey(campaign_ref, ondelete="CASCADE", name=f"fk_{p}_attempt_campaign_id"),
            nullable=False,
            index=True,
        )
        number: Mapped[int] = mapped_column(sa.Integer, nullable=False)
        trigger: Mapped[str] = mapped_column(sa.String(16), nullable=False)
        triggered_by: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
        started_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
        ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
        prepared: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
        batches_total: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        batches_settled: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        targeted: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        sent: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        failed: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        uncertain: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        skipped: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        include_uncertain: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
        outcome: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
        error_summary: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
        halt_reason: Mapped[str | None] = mapped_column(SHORT_TEXT, nullable=True)
        paused_until: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
        #: The message every batch of the attempt sends, built once when it is prepared.
        message: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
        #: The campaign row's ``retry_incarnation`` when the attempt was made.
        incarnation: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)

    class CampaignBatch(db.Model):  # type: ignore[misc]
        """A slice of an attempt's recipients submitted in one provider call."""

        __tablename__ = f"{p}_batch"
        __table_args__ = (
            sa.UniqueConstraint("attempt_id", "seq", name=f"uq_{p}_batch_attempt_seq"),
            sa.Index(f"ix_{p}_batch_status_lease", "status", "lease_until"),
        )

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        campaign_id: Mapped[Any] = mapped_column(
            campaign_id_type,
            sa.ForeignKey(campaign_ref, ondelete="CASCADE", name=f"fk_{p}_batch_campaign_id"),
            nullable=False,
            index=True,
        )
        attempt_id: Mapped[int] = mapped_column(
            BigId,
            sa.ForeignKey(f"{p}_attempt.id", ondelete="CASCADE", name=f"fk_{p}_batch_attempt_id"),
            nullable=False,
        )
        seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
        size: Mapped[int] = mapped_column(sa.Integer, nullable=False)
        status: Mapped[str] = mapped_column(
            sa.String(16), nullable=False, default=BatchStatus.QUEUED
        )
        tries: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        claim_token: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
        lease_until: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
        next_try_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
        provider_message_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
        #: Which provider carried the batch's last run (the primary or the fallback).
        provider: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
        sent: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        failed: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        uncertain: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        skipped: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        error_kind: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
        error_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
        error_message: Mapped[str | None] = mapped_column(SHORT_TEXT, nullable=True)
        created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
        settled_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)

    class CampaignRecipient(db.Model):  # type: ignore[misc]
        """One recipient of one campaign, frozen at the first send."""

        __tablename__ = f"{p}_recipient"
        __table_args__ = (
            sa.UniqueConstraint(
                "campaign_id", "email_key", name=f"uq_{p}_recipient_campaign_email_key"
            ),
            sa.Index(f"ix_{p}_recipient_campaign_status", "campaign_id", "status"),
            sa.Index(f"ix_{p}_recipient_batch_status", "batch_id", "status"),
        )

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        campaign_id: Mapped[Any] = mapped_column(
            campaign_id_type,
            sa.ForeignKey(campaign_ref, ondelete="CASCADE", name=f"fk_{p}_recipient_campaign_id"),
            nullable=False,
        )
        email: Mapped[str] = mapped_column(sa.String(320), nullable=False)
        #: What duplicates are recognised by: the case-folded address (or the address itself
        #: with CAMPAIGN_RETRY_CASEFOLD_DEDUPE off).
        email_key: Mapped[str] = mapped_column(sa.String(320), nullable=False)
        #: The campaign row's ``retry_incarnation`` this row was frozen (or pre-filled) for.
        incarnation: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
        variables: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
        status: Mapped[RecipientStatus] = mapped_column(
            RECIPIENT_STATUS, nullable=False, default=RecipientStatus.PENDING
        )
        batch_id: Mapped[int | None] = mapped_column(
            BigId,
            sa.ForeignKey(f"{p}_batch.id", ondelete="SET NULL", name=f"fk_{p}_recipient_batch_id"),
            nullable=True,
        )
        submissions: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        failure_kind: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
        error_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
        error_message: Mapped[str | None] = mapped_column(SHORT_TEXT, nullable=True)
        provider_message_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
        sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
        delivered_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)

    _delete_rows_with_campaign(campaign_model, CampaignRecipient, CampaignBatch, CampaignAttempt)
    _stamp_attempt_incarnation(campaign_model, CampaignAttempt)
    return TrackingModels(
        campaign=campaign_model,
        recipient=CampaignRecipient,
        batch=CampaignBatch,
        attempt=CampaignAttempt,
    )


def _delete_rows_with_campaign(campaign_model: type, *tracking: Any) -> None:
    """When the ORM deletes a campaign, delete its tracking rows in the same transaction.

    PostgreSQL's ON DELETE CASCADE already does; SQLite does only with its foreign-key pragma
    on. Rows that a bulk or raw-SQL delete leaves behind are recognised by their incarnation
    and discarded at the next first send of the id (``policy.incarnation``).
    """

    def after_delete(mapper: Any, connection: Any, target: Any) -> None:
        campaign_id = mapper.primary_key_from_instance(target)[0]
        for model in tracking:
            table = model.__table__
            connection.execute(sa.delete(table).where(table.c.campaign_id == campaign_id))

    sa.event.listen(campaign_model, "after_delete", after_delete)


def _stamp_attempt_incarnation(campaign_model: type, attempt_model: Any) -> None:
    """An attempt added through the ORM without ``incarnation`` gets its campaign row's, so every
    code path that makes attempts ties them to the campaign row they belong to."""
    campaigns = campaign_model.__table__  # type: ignore[attr-defined]
    (key,) = campaigns.primary_key.columns

    def before_insert(mapper: Any, connection: Any, target: Any) -> None:
        if target.incarnation is None:
            target.incarnation = connection.execute(
                sa.select(columns(campaigns).retry_incarnation).where(key == target.campaign_id)
            ).scalar()

    sa.event.listen(attempt_model, "before_insert", before_insert)
