"""Column types shared by the mixin and the tracking tables."""

from __future__ import annotations

import sqlalchemy as sa

from flask_campaign_retry.statuses import EmailStatus, RecipientStatus

#: A 64-bit key on PostgreSQL; SQLite only autoincrements a plain INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Statuses are VARCHARs (``native_enum=False``, no CHECK constraint): adding a value never
#: needs a migration on either database.
EMAIL_STATUS = sa.Enum(
    EmailStatus,
    native_enum=False,
    create_constraint=False,
    length=20,
    values_callable=lambda enum: [member.value for member in enum],
    validate_strings=True,
)
RECIPIENT_STATUS = sa.Enum(
    RecipientStatus,
    native_enum=False,
    create_constraint=False,
    length=20,
    values_callable=lambda enum: [member.value for member in enum],
    validate_strings=True,
)
SHORT_TEXT = sa.String(500)
