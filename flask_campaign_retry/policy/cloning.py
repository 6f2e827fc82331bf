"""Clone a campaign into a new DRAFT, optionally with only the recipients who did not get it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.campaign_fields import columns, fields, mixin_column_names
from flask_campaign_retry.errors import ConfigurationError, TransitionRefused
from flask_campaign_retry.policy.incarnation import discard_stale_rows, ensure_incarnation
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import EmailStatus, RecipientStatus

NOT_RECEIVED = (
    RecipientStatus.PENDING,
    RecipientStatus.FAILED,
    RecipientStatus.UNCERTAIN,
    RecipientStatus.SENDING,
)


def clone_field_names(state: AppState, campaign: Any) -> list[str]:
    """The host's declared clone fields, or every host column except keys and mixin columns."""
    table = state.models.campaign.__table__
    mixin_columns = mixin_column_names(state.models.campaign)
    hook = state.extension.hooks.clone_fields
    if hook is not None:
        names = list(hook(campaign))
        unknown = [name for name in names if name not in table.c]
        if unknown:
            raise ConfigurationError(
                f"@retry.clone_fields returned {unknown}, which are not columns of {table.name}."
            )
        return [name for name in names if name not in mixin_columns]
    return [
        column.key
        for column in table.columns
        if not column.primary_key and column.key not in mixin_columns
    ]


def _refuse_while_sending(state: AppState, campaign: Any) -> None:
    """Who did not get the email is not known while an attempt runs: a clone made now would
    copy recipients the running attempt is about to send to, and both would mail them."""
    campaigns = state.models.campaign.__table__
    (key,) = campaigns.primary_key.columns
    status = state.db.session.execute(
        sa.select(columns(campaigns).status).where(key == campaign.id)
    ).scalar()
    if status is not None and EmailStatus(status) is EmailStatus.SENDING:
        raise TransitionRefused(
            "clone_while_sending",
            "The campaign is sending: who did not get it is known only when the attempt ends. "
            "Clone with only_unsent once it has finished.",
        )


def clone_campaign(state: AppState, campaign: Any, *, only_unsent: bool) -> Any:
    """Create and commit a DRAFT copy of ``campaign``; the original is not modified.

    With ``only_unsent`` the clone's recipient list is frozen now to the original's recipients
    who did not receive it (failed, uncertain, never submitted); its first send uses that list.
    """
    session = state.db.session
    model = state.models.campaign
    recipients = state.models.recipient.__table__
    r = recipients.c
    unsent = sa.and_(r.campaign_id == campaign.id, r.status.in_(NOT_RECEIVED))
    if only_unsent:
        _refuse_while_sending(state, campaign)
    if only_unsent and not session.execute(sa.select(sa.literal(1)).where(unsent).limit(1)).first():
        raise TransitionRefused(
            "nothing_unsent",
            "Every recipient of this campaign received it (or was skipped): there is nobody "
            "to clone for. Clone without only_unsent to copy the content.",
        )
    values = {name: getattr(campaign, name) for name in clone_field_names(state, campaign)}
    clone = model(**values)
    fields(clone).status = EmailStatus.DRAFT
    fields(clone).cloned_from_id = campaign.id
    session.add(clone)
    session.flush()
    # The database may have given the clone a deleted campaign's id: its rows are not ours.
    discard_stale_rows(state, clone.id, ensure_incarnation(state, clone))
    if only_unsent:
        session.execute(
            sa.insert(recipients).from_select(
                [
                    "campaign_id",
                    "email",
                    "email_key",
                    "incarnation",
                    "variables",
                    "status",
                    "submissions",
                ],
                sa.select(
                    sa.literal(clone.id, type_=r.campaign_id.type),
                    r.email,
                    r.email_key,
                    # Ties the pre-filled rows to this clone row (see policy.incarnation).
                    sa.literal(fields(clone).retry_incarnation, type_=r.incarnation.type),
                    r.variables,
                    sa.literal(RecipientStatus.PENDING.value),
                    sa.literal(0),
                ).where(unsent),
            )
        )
        fields(clone).total_recipients = session.execute(
            sa.select(sa.func.count()).select_from(recipients).where(r.campaign_id == clone.id)
        ).scalar_one()
    after_clone = state.extension.hooks.after_clone
    if after_clone is not None:
        try:
            after_clone(campaign, clone)
        except BaseException:
            session.rollback()
            raise
    session.commit()
    return clone
