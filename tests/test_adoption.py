"""Adopting the extension in an app whose campaign table already has rows: the migration that
Flask-Migrate generates for the mixin applies as generated, on SQLite and PostgreSQL, and
`adopt` marks the campaigns the host had already sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask_migrate import Migrate, init, migrate, upgrade
from flask_sqlalchemy import SQLAlchemy

from flask_campaign_retry import CampaignMixin, CampaignRetry, ConfigurationError, EmailStatus
from flask_campaign_retry.queue.worker import run_burst

SENT_AT = datetime(2026, 11, 1, 9, 0)
#: Flask-Migrate's generated env.py still calls the deprecated `get_engine`.
pytestmark = pytest.mark.filterwarnings("ignore:.get_engine. is deprecated:DeprecationWarning")


def _app(name: str, database_url: str, redis_url: str) -> Flask:
    app = Flask(name)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        CAMPAIGN_RETRY_PROVIDER="sandbox",
        CAMPAIGN_RETRY_REDIS_URL=redis_url,
        CAMPAIGN_RETRY_QUEUE=f"adopt-{name}",
        SECRET_KEY="test",
    )
    return app


def _quiet_env(directory: Path) -> None:
    """Alembic's env.py would reconfigure logging for the whole test session."""
    env = directory / "env.py"
    env.write_text(env.read_text().replace("fileConfig(config.config_file_name)", "pass"))


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    return tmp_path / "migrations"


@pytest.fixture
def host_before(database_url: str, redis_url: str, migrations: Path) -> Iterator[Any]:
    """The host app before adopting: its own campaign table with three campaigns, two sent."""
    db = SQLAlchemy()

    class Newsletter(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "newsletter"
        id = db.Column(db.Integer, primary_key=True)
        subject = db.Column(db.String(200), nullable=False)
        sent_at = db.Column(db.DateTime, nullable=True)

    app = _app("before", database_url, redis_url)
    db.init_app(app)
    Migrate(app, db, directory=str(migrations))
    with app.app_context():
        init(str(migrations))
        _quiet_env(migrations)
        migrate(str(migrations), message="host schema")
        upgrade(str(migrations))
        db.session.add_all(
            [
                Newsletter(subject="October", sent_at=SENT_AT),
                Newsletter(subject="November", sent_at=SENT_AT),
                Newsletter(subject="December draft"),
            ]
        )
        db.session.commit()
        engine = db.engine
    yield engine
    with engine.begin() as conn:
        for table in reversed(sa.MetaData().tables.values()):
            conn.execute(sa.schema.DropTable(table))
        reflected = sa.MetaData()
        reflected.reflect(conn)
        reflected.drop_all(conn)
    engine.dispose()


def _host_after(database_url: str, redis_url: str, migrations: Path) -> tuple[Flask, Any, Any]:
    """The same host after the README's steps: the mixin, init_app, `flask db migrate`."""
    db = SQLAlchemy()
    retry = CampaignRetry()

    class Newsletter(CampaignMixin, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "newsletter"
        id = db.Column(db.Integer, primary_key=True)
        subject = db.Column(db.String(200), nullable=False)
        sent_at = db.Column(db.DateTime, nullable=True)

    @retry.recipients_loader
    def recipients(campaign: Any) -> list[str]:
        return ["ann@example.com", "bob@example.com"]

    @retry.message_builder
    def message(campaign: Any) -> dict[str, str]:
        return {"subject": campaign.subject, "text": "Hello", "from": "news@example.com"}

    app = _app("after", database_url, redis_url)
    db.init_app(app)
    retry.init_app(app, db=db, campaign_model=Newsletter)
    Migrate(app, db, directory=str(migrations))
    return app, retry, Newsletter


def test_the_generated_migration_applies_to_a_table_with_rows_and_adopt_marks_sent_ones(
    host_before: Any, database_url: str, redis_url: str, migrations: Path
) -> None:
    app, retry, newsletter = _host_after(database_url, redis_url, migrations)
    with app.app_context():
        migrate(str(migrations), message="adopt flask-campaign-retry")
        upgrade(str(migrations))
        db = retry.models().recipient.metadata
        assert {"campaign_retry_recipient", "campaign_retry_attempt"} <= set(db.tables)
        rows = {c.subject: c for c in newsletter.query.order_by(newsletter.id)}
        assert {s: (c.status, c.retry_count, c.max_retries) for s, c in rows.items()} == {
            "October": (EmailStatus.DRAFT, 0, 3),
            "November": (EmailStatus.DRAFT, 0, 3),
            "December draft": (EmailStatus.DRAFT, 0, 3),
        }

        dry = retry.adopt("sent_at IS NOT NULL", dry_run=True)
        assert (dry.campaign_ids, dry.dry_run) == ([1, 2], True)
        app.extensions["sqlalchemy"].session.expire_all()
        assert {c.status for c in newsletter.query} == {EmailStatus.DRAFT}

        done = retry.adopt(newsletter.sent_at.is_not(None))
        assert done.campaign_ids == [1, 2]
        app.extensions["sqlalchemy"].session.expire_all()
        status = {c.subject: c.status for c in newsletter.query}
        assert status == {
            "October": EmailStatus.SENT,
            "November": EmailStatus.SENT,
            "December draft": EmailStatus.DRAFT,
        }
        assert retry.adopt("sent_at IS NOT NULL").campaign_ids == []  # nothing left to adopt

        draft = newsletter.query.filter_by(subject="December draft").one()
        retry.send(draft)
        run_burst(app)
        app.extensions["sqlalchemy"].session.expire_all()
        draft = newsletter.query.filter_by(subject="December draft").one()
        assert (draft.status, draft.successful_sends, draft.total_recipients) == (
            EmailStatus.SENT,
            2,
            2,
        )


def test_adopt_on_the_command_line_with_a_dry_run_and_a_bad_condition(
    host_before: Any, database_url: str, redis_url: str, migrations: Path
) -> None:
    app, retry, _ = _host_after(database_url, redis_url, migrations)
    with app.app_context():
        migrate(str(migrations), message="adopt")
        upgrade(str(migrations))
    runner = app.test_cli_runner()

    def adopt(*args: str) -> Result:
        return runner.invoke(args=["campaign-retry", "adopt", *args])

    dry = adopt("--sent-where", "sent_at IS NOT NULL", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output == "Would mark 2 campaign(s) SENT (dry run, nothing changed): 1, 2.\n"
    bad = adopt("--sent-where", "no_such_column = 1")
    assert bad.exit_code == 1
    assert "could not be used on table 'newsletter'" in bad.output
    assert "sent_at IS NOT NULL" in bad.output
    real = adopt("--sent-where", "sent_at IS NOT NULL")
    assert real.output == "Marked 2 campaign(s) SENT: 1, 2.\n"
    with app.app_context(), pytest.raises(ConfigurationError, match="selects the campaigns"):
        retry.adopt("  ")
