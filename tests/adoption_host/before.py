"""The newsletter app before it adopted flask-campaign-retry.

Its ``Newsletter.status`` is its own editorial state (draft, published, archived), it keeps an
``Email`` row per recipient with its own status, and it is configured for Flask-Mail.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Subscriber(db.Model):  # type: ignore[name-defined,misc]
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(320), nullable=False, unique=True)
    name = db.Column(db.String(80))
    active = db.Column(db.Boolean, nullable=False, default=True)


class Newsletter(db.Model):  # type: ignore[name-defined,misc]
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


def create_app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="dev",
        MAIL_SERVER="localhost",
        MAIL_PORT=25,
        MAIL_DEFAULT_SENDER="News <news@example.com>",
    )
    app.config.update(config)
    db.init_app(app)
    migrate.init_app(app, db, directory=app.config["MIGRATIONS_DIRECTORY"])
    return app
