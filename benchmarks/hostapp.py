"""The benchmarks' host application, wired the way a real app uses the extension.

Subprocesses (workers, memory probes) build it from JSON in ``BENCH_APP_CONFIG``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_campaign_retry import CampaignMixin, CampaignRetry, OutgoingMessage

CONFIG_ENV = "BENCH_APP_CONFIG"
LOADER_PAGE = 1000

db = SQLAlchemy()
retry = CampaignRetry()


class Subscriber(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_subscriber"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    list_name: Mapped[str] = mapped_column(sa.String(50), index=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    first_name: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)


class Campaign(CampaignMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "bench_campaign"
    id: Mapped[int] = mapped_column(primary_key=True)
    list_name: Mapped[str] = mapped_column(sa.String(50))
    subject: Mapped[str] = mapped_column(sa.String(200), default="Hello %recipient.first_name%")
    html: Mapped[str] = mapped_column(
        sa.Text, default="<p>Hi %recipient.first_name%, this is our newsletter.</p>"
    )


def iter_subscribers(list_name: str) -> Iterator[tuple[str, str | None]]:
    """(email, first name) of a list, keyset-paginated: never the whole list in memory."""
    last_id = 0
    while True:
        page = db.session.execute(
            sa.select(Subscriber.id, Subscriber.email, Subscriber.first_name)
            .where(Subscriber.list_name == list_name, Subscriber.id > last_id)
            .order_by(Subscriber.id)
            .limit(LOADER_PAGE)
        ).all()
        if not page:
            return
        for _, email, first_name in page:
            yield email, first_name
        last_id = page[-1][0]


@retry.recipients_loader
def load_recipients(campaign: Campaign) -> Iterator[dict[str, Any]]:
    for email, first_name in iter_subscribers(campaign.list_name):
        yield {"email": email, "variables": {"first_name": first_name or "friend"}}


@retry.message_builder
def build_message(campaign: Campaign) -> OutgoingMessage:
    return OutgoingMessage(
        subject=campaign.subject,
        from_address="News <news@example.com>",
        html=campaign.html,
        tags=["newsletter"],
    )


@retry.authorize
def may(campaign: Campaign, action: str) -> bool:
    return False  # the benchmarks call the API, never the routes


def create_app(config: dict[str, Any]) -> Flask:
    app = Flask("benchhost")
    app.config.update(
        SECRET_KEY="bench",
        CAMPAIGN_RETRY_PROVIDER="mailgun",
        MAILGUN_WEBHOOK_SIGNING_KEY="bench-signing-key",
    )
    app.config.update(config)
    db.init_app(app)
    retry.init_app(app, db=db, campaign_model=Campaign)
    return app


def create_app_from_env() -> Flask:
    return create_app(json.loads(os.environ[CONFIG_ENV]))


def seed_list(list_name: str, size: int) -> None:
    """Add ``size`` subscribers to ``list_name`` in one server-side statement."""
    db.session.execute(
        sa.text(
            "INSERT INTO bench_subscriber (list_name, email, first_name) "
            "SELECT :list, :list || '-' || lpad(i::text, 7, '0') || '@example.com', "
            "'n' || i FROM generate_series(1, :size) AS i"
        ),
        {"list": list_name, "size": size},
    )
    db.session.commit()
    db.session.execute(sa.text("ANALYZE bench_subscriber"))
    db.session.commit()


def new_campaign(list_name: str) -> Campaign:
    campaign = Campaign(list_name=list_name)
    db.session.add(campaign)
    db.session.commit()
    return campaign
