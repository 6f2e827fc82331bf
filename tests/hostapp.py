"""A small host application, used by the tests the way a real app uses the extension.

Worker subprocesses import it too: `flask --app tests.hostapp:create_app_from_env ...`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_campaign_retry import CampaignMixin, CampaignRetry, OutgoingMessage, campaign_mixin
from flask_campaign_retry.campaign_fields import CAMPAIGN_FIELDS

db = SQLAlchemy()
retry = CampaignRetry()


class Subscriber(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "subscriber"
    id: Mapped[int] = mapped_column(primary_key=True)
    list_name: Mapped[str] = mapped_column(sa.String(50), index=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    first_name: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)
    unsubscribed: Mapped[bool] = mapped_column(default=False)


#: FCR_TEST_RENAMED_COLUMNS=1 runs the suite against a campaign model whose mixin fields are all
#: renamed (``cr_status``, ...): the extension must reach every one through
#: ``campaign_fields``; a direct ``campaign.status`` from the package fails the test.
RENAMED_COLUMNS = os.environ.get("FCR_TEST_RENAMED_COLUMNS") == "1"
_Mixin: type = (
    campaign_mixin(**{field: f"cr_{field}" for field in CAMPAIGN_FIELDS})
    if RENAMED_COLUMNS
    else CampaignMixin
)


class _PackageMustNotUse:
    """The extension's name of a renamed field: the tests may use it (it reads and writes the
    renamed column), the package may not."""

    def __init__(self, field: str) -> None:
        self.field = field

    def _check(self) -> None:
        caller = sys._getframe(2).f_globals.get("__name__", "")
        if caller.startswith("flask_campaign_retry"):
            raise AssertionError(f"{caller} used campaign.{self.field}, not fields(campaign)")

    def __get__(self, obj: Any, owner: type) -> Any:
        self._check()
        return getattr(owner if obj is None else obj, f"cr_{self.field}")

    def __set__(self, obj: Any, value: Any) -> None:
        self._check()
        setattr(obj, f"cr_{self.field}", value)


class Campaign(_Mixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "campaign"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    list_name: Mapped[str] = mapped_column(sa.String(50))
    subject: Mapped[str] = mapped_column(sa.String(200), default="Hello %recipient.first_name%")
    html: Mapped[str] = mapped_column(sa.Text, default="<p>Hi %recipient.first_name%</p>")
    from_address: Mapped[str] = mapped_column(sa.String(200), default="News <news@example.com>")


if RENAMED_COLUMNS:
    for _field in CAMPAIGN_FIELDS:
        setattr(Campaign, _field, _PackageMustNotUse(_field))


@retry.recipients_loader
def load_recipients(campaign: Campaign) -> Iterator[dict[str, Any]]:
    """Keyset-paginated, so the host's list is never held in memory whole."""
    last_id = 0
    while True:
        page = db.session.execute(
            sa.select(Subscriber.id, Subscriber.email, Subscriber.first_name)
            .where(
                Subscriber.list_name == campaign.list_name,
                Subscriber.id > last_id,
                Subscriber.unsubscribed.is_(False),
            )
            .order_by(Subscriber.id)
            .limit(1000)
        ).all()
        if not page:
            return
        for _, email, first_name in page:
            yield {"email": email, "variables": {"first_name": first_name or "friend"}}
        last_id = page[-1][0]


@retry.message_builder
def build_message(campaign: Campaign) -> OutgoingMessage:
    return OutgoingMessage(
        subject=campaign.subject,
        from_address=campaign.from_address,
        html=campaign.html,
        tags=["newsletter"],
    )


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask("hostapp")
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite://",
        CAMPAIGN_RETRY_PROVIDER="sandbox",
        SECRET_KEY="test",
    )
    app.config.update(config or {})
    db.init_app(app)
    retry.init_app(app, db=db, campaign_model=Campaign)
    return app


def create_app_from_env() -> Flask:
    """For worker subprocesses: the test passes its config as JSON in HOSTAPP_CONFIG."""
    return create_app(json.loads(os.environ["HOSTAPP_CONFIG"]))


def add_subscribers(list_name: str, emails: list[str]) -> None:
    db.session.execute(
        sa.insert(Subscriber),
        [
            {"list_name": list_name, "email": email, "first_name": f"n{i}"}
            for i, email in enumerate(emails)
        ],
    )
    db.session.commit()


def new_campaign(list_name: str, name: str = "c") -> Campaign:
    campaign = Campaign(name=name, list_name=list_name)
    db.session.add(campaign)
    db.session.commit()
    return campaign
