"""trust-data: campaign incarnation marker, case-folded recipient dedupe key

Revision ID: 7d41c0a2b9e3
Revises: a1c3e5f7b9d2
Create Date: 2026-12-02 17:00:00.000000

Existing rows: every campaign gets a random ``retry_incarnation`` and its attempts and
recipients copy it (so a clone's pre-filled list stays its own); ``email_key`` of existing
recipients is their address as stored, which the old unique constraint already kept unique.
"""

import uuid

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7d41c0a2b9e3"
down_revision = "a1c3e5f7b9d2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_incarnation", sa.String(length=32), nullable=True))
    with op.batch_alter_table("campaign_retry_attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incarnation", sa.String(length=32), nullable=True))
    with op.batch_alter_table("campaign_retry_recipient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_key", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("incarnation", sa.String(length=32), nullable=True))

    bind = op.get_bind()
    campaign = sa.table("campaign", sa.column("id"), sa.column("retry_incarnation"))
    for (campaign_id,) in bind.execute(sa.select(campaign.c.id)).all():
        bind.execute(
            campaign.update()
            .where(campaign.c.id == campaign_id)
            .values(retry_incarnation=uuid.uuid4().hex)
        )
    for name in ("campaign_retry_attempt", "campaign_retry_recipient"):
        table = sa.table(name, sa.column("campaign_id"), sa.column("incarnation"))
        bind.execute(
            table.update().values(
                incarnation=sa.select(campaign.c.retry_incarnation)
                .where(campaign.c.id == table.c.campaign_id)
                .scalar_subquery()
            )
        )
    recipient = sa.table("campaign_retry_recipient", sa.column("email"), sa.column("email_key"))
    bind.execute(recipient.update().values(email_key=recipient.c.email))

    with op.batch_alter_table("campaign_retry_recipient", schema=None) as batch_op:
        batch_op.alter_column("email_key", existing_type=sa.String(length=320), nullable=False)
        batch_op.drop_constraint("uq_campaign_retry_recipient_campaign_email", type_="unique")
        batch_op.create_unique_constraint(
            "uq_campaign_retry_recipient_campaign_email_key", ["campaign_id", "email_key"]
        )


def downgrade():
    with op.batch_alter_table("campaign_retry_recipient", schema=None) as batch_op:
        batch_op.drop_constraint("uq_campaign_retry_recipient_campaign_email_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_campaign_retry_recipient_campaign_email", ["campaign_id", "email"]
        )
        batch_op.drop_column("incarnation")
        batch_op.drop_column("email_key")
    with op.batch_alter_table("campaign_retry_attempt", schema=None) as batch_op:
        batch_op.drop_column("incarnation")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("retry_incarnation")
