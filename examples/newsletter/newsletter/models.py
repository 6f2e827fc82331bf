"""The newsletter's own tables. ``Campaign`` adds the extension's columns with CampaignMixin."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from flask_campaign_retry import CampaignMixin

from .extensions import db


def utcnow() -> datetime:
    """Naive UTC, the way the extension stores its times."""
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "app_user"  # "user" is a reserved word in PostgreSQL

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    password_hash: Mapped[str] = mapped_column(sa.String(255))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class MailingList(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "mailing_list"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship()


class Subscriber(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "subscriber"
    __table_args__ = (sa.UniqueConstraint("list_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_list.id"), index=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    first_name: Mapped[str | None] = mapped_column(sa.String(80))
    subscribed_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when the subscriber leaves the list; a retry then skips them (exclude hook).
    unsubscribed_at: Mapped[datetime | None] = mapped_column()


class Campaign(CampaignMixin, db.Model):  # type: ignore[name-defined,misc]
    """One email to one list. CampaignMixin adds status, failed_at, retry_count, ..."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("app_user.id"), index=True)
    list_id: Mapped[int] = mapped_column(sa.ForeignKey("mailing_list.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    subject: Mapped[str] = mapped_column(sa.String(200))
    from_address: Mapped[str] = mapped_column(sa.String(320))
    html: Mapped[str] = mapped_column(sa.Text, default="")
    text: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship()
    mailing_list: Mapped[MailingList] = relationship()

    #: The columns a clone copies (``@retry.clone_fields``); everything else starts afresh.
    CONTENT_FIELDS = ("owner_id", "list_id", "name", "subject", "from_address", "html", "text")
