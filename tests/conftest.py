"""Fixtures: a fresh app per test on SQLite and on the real PostgreSQL, a real Redis keyspace,
the fake Mailgun server on loopback, and in-process or subprocess RQ workers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry.hooks import Hooks
from tests import hostapp

#: The web fixtures (web_app, client, authorize) live in tests/webapp.py.
pytest_plugins = ["tests.webapp", "tests.private_redis"]

IN_CI = os.environ.get("CI") == "true"
REDIS_HOST = os.environ.get("FCR_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("FCR_TEST_REDIS_PORT", "6379"))
#: The Redis database these tests own; flushed at the start and end of the session, unless
#: FCR_TEST_REDIS_NO_FLUSH=1: `make mutate` runs test sessions side by side in one database
#: (every test uses queue names of its own, so only the flush would make them collide).
REDIS_DB = int(os.environ.get("FCR_TEST_REDIS_DB", "11"))
REDIS_FLUSH = os.environ.get("FCR_TEST_REDIS_NO_FLUSH") != "1"
#: The databases each database test runs on, comma-separated (both by default). `make mutate`
#: runs one at a time (MUTATE_DATABASE): SQLite, or PostgreSQL for the code only it takes.
DATABASES = os.environ.get("FCR_TEST_DATABASES", "sqlite,postgres").split(",")
if not DATABASES or not set(DATABASES) <= {"sqlite", "postgres"}:
    raise ValueError(
        f"FCR_TEST_DATABASES={','.join(DATABASES)!r}: give sqlite, postgres or sqlite,postgres."
    )
PG_ADMIN_URL = os.environ.get(
    "FCR_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc}); `make test` starts it."
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        _unavailable("Redis", exc)
    if REDIS_FLUSH:
        client.flushdb()
    yield url
    if REDIS_FLUSH:
        client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"fcr_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def fake_mailgun() -> Iterator[Any]:
    from flask_campaign_retry.testing.fake_mailgun import FakeMailgun

    server = FakeMailgun()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailgun(fake_mailgun: Any) -> Any:
    fake_mailgun.reset()
    return fake_mailgun


@pytest.fixture
def make_app(database_url: str, redis_url: str, mailgun: Any) -> Iterator[Callable[..., Flask]]:
    """Build a host app wired to this test's database, Redis queue and fake Mailgun."""
    apps: list[Flask] = []
    queue = f"t{uuid.uuid4().hex[:12]}"

    def factory(**overrides: Any) -> Flask:
        config: dict[str, Any] = {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "CAMPAIGN_RETRY_REDIS_URL": redis_url,
            "CAMPAIGN_RETRY_QUEUE": queue,
            "CAMPAIGN_RETRY_PROVIDER": "mailgun",
            "MAILGUN_API_KEY": mailgun.api_key,
            "MAILGUN_DOMAIN": mailgun.domain,
            "MAILGUN_API_URL": mailgun.url,
            "CAMPAIGN_RETRY_READ_TIMEOUT": 2.0,
            # Automatic retries on a test's time scale.
            "CAMPAIGN_RETRY_BACKOFF_BASE": 0.2,
            "CAMPAIGN_RETRY_BACKOFF_CAP": 1.0,
        }
        config.update(overrides)
        app = hostapp.create_app(config)
        if not apps:
            with app.app_context():
                hostapp.db.drop_all()
                hostapp.db.create_all()
        apps.append(app)
        return app

    yield factory
    if apps:
        for each in apps:
            with each.app_context():
                hostapp.db.session.remove()
                for engine in hostapp.db.engines.values():
                    engine.dispose()
        with apps[0].app_context():
            _end_other_sessions(database_url)
            hostapp.db.drop_all()
            hostapp.db.session.remove()
            for engine in hostapp.db.engines.values():
                engine.dispose()


def _end_other_sessions(database_url: str) -> None:
    """A test that failed half way can leave a connection idle in a transaction, holding locks
    that would make DROP TABLE wait forever: end such sessions on this test's database."""
    if not database_url.startswith("postgresql"):
        return
    hostapp.db.session.execute(
        sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )
    hostapp.db.session.commit()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app()
    with app.app_context():
        yield app


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    """The host app's hooks, restored after the test (tests set their own)."""
    saved = dict(vars(hostapp.retry.hooks))
    yield hostapp.retry.hooks
    for name, value in saved.items():
        setattr(hostapp.retry.hooks, name, value)
