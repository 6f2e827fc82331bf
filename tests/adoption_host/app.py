"""The newsletter app after adopting flask-campaign-retry, following the README's steps.

What changed from ``before.py``: the mixin (with its ``status`` renamed, since ``status`` is
this app's own column), ``retry.init_app`` with a recipients loader and a message builder,
``CAMPAIGN_RETRY_PROVIDER = "smtp"`` (it reads the app's ``MAIL_*`` settings), the send view
calling ``retry.send``, the panel on the newsletter page, and the ``recipients_settled``
receiver that mirrors outcomes into the app's own ``Email`` rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Flask, redirect, render_template_string
from flask.typing import ResponseReturnValue
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from flask_campaign_retry import CampaignRetry, OutgoingMessage, campaign_mixin, signals

db = SQLAlchemy()
migrate = Migrate()
retry = CampaignRetry()


class Subscriber(db.Model):  # type: ignore[name-defined,misc]
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(320), nullable=False, unique=True)
    name = db.Column(db.String(80))
    active = db.Column(db.Boolean, nullable=False, default=True)


class Newsletter(campaign_mixin(status="send_status"), db.Model):  # type: ignore[name-defined,misc]
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    body = db.Column(db.Text, nullable=False)
    status = db.Column(db.String(20), nullable=False, default="draft")
    sent_at = db.Column(db.DateTime)


class Email(db.Model):  # type: ignore[name-defined,misc]
    id = db.Column(db.Integer, primary_key=True)
    newsletter_id = db.Column(db.Integer, db.ForeignKey("newsletter.id"), nullable=False)
    address = db.Column(db.String(320), nullable=False)
    status = db.Column(db.String(20), nullable=False, default="queued")
    error = db.Column(db.Text)


@retry.recipients_loader
def recipients(newsletter: Newsletter) -> Iterator[dict[str, Any]]:
    for sub in Subscriber.query.filter_by(active=True).order_by(Subscriber.id).yield_per(1000):
        yield {"email": sub.email, "variables": {"name": sub.name or "reader"}}


@retry.message_builder
def message(newsletter: Newsletter) -> OutgoingMessage:
    return OutgoingMessage(
        subject=newsletter.title,
        html=newsletter.body,
        from_address="News <news@example.com>",
    )


@retry.authorize
def may(newsletter: Newsletter, action: str) -> bool:
    return True  # a real app checks current_user here


def mirror(app: Flask, campaign_id: Any, outcomes: list[Any], **extra: Any) -> None:
    """The README's recipe: the batch's outcomes into this app's Email rows, one statement."""
    emails = Email.__table__  # the Core table: one executemany UPDATE
    db.session.execute(
        sa.update(emails)
        .where(emails.c.newsletter_id == campaign_id, emails.c.address == sa.bindparam("b_address"))
        .values(status=sa.bindparam("b_status"), error=sa.bindparam("b_error")),
        [
            {"b_address": o.email, "b_status": o.status.lower(), "b_error": o.error_message}
            for o in outcomes
        ],
    )
    db.session.commit()


PAGE = "<h1>{{ campaign.title }}</h1>{% include 'campaign_retry/panel.html' %}"


def create_app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="dev",
        MAIL_SERVER="localhost",
        MAIL_PORT=25,
        MAIL_DEFAULT_SENDER="News <news@example.com>",
        CAMPAIGN_RETRY_PROVIDER="smtp",
    )
    app.config.update(config)
    db.init_app(app)
    migrate.init_app(app, db, directory=app.config["MIGRATIONS_DIRECTORY"])
    retry.init_app(app, db=db, campaign_model=Newsletter)
    signals.recipients_settled.connect(mirror, sender=app)

    @app.post("/newsletters/<int:newsletter_id>/send")
    def send(newsletter_id: int) -> ResponseReturnValue:
        newsletter = db.get_or_404(Newsletter, newsletter_id)
        addresses = [s.email for s in Subscriber.query.filter_by(active=True)]
        db.session.add_all(Email(newsletter_id=newsletter.id, address=a) for a in addresses)
        db.session.commit()
        retry.send(newsletter)
        return redirect(f"/newsletters/{newsletter_id}")

    @app.get("/newsletters/<int:newsletter_id>")
    def show(newsletter_id: int) -> str:
        return render_template_string(PAGE, campaign=db.get_or_404(Newsletter, newsletter_id))

    return app
