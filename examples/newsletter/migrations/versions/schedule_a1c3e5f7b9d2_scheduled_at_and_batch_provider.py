"""scheduled sends (campaign.scheduled_at) and the provider that carried each batch

Revision ID: a1c3e5f7b9d2
Revises: 423dde8740c6
Create Date: 2026-12-02 17:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a1c3e5f7b9d2"
down_revision = "423dde8740c6"
branch_labels = None
depends_on = None


def upgrade():
    # Both columns are nullable: existing rows need no value (NULL = not scheduled / carried
    # by the provider configured at the time).
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduled_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("campaign_retry_batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table("campaign_retry_batch", schema=None) as batch_op:
        batch_op.drop_column("provider")

    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("scheduled_at")
