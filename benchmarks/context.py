"""One benchmark session: its database, Redis, fake Mailgun process, apps and options."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import Flask

from . import hostapp
from .env import bench_database, bench_redis
from .fake_proc import FakeMailgunProcess

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """``quick``: small sizes, a smoke run (figures printed, not judged).
    ``skip_million``: the 1,000,000-recipient runs (targets 5 and 6) use 100,000 instead."""

    quick: bool = False
    skip_million: bool = False

    @property
    def judged(self) -> bool:
        return not self.quick


class BenchError(AssertionError):
    """A benchmark found the engine did something wrong (a crash, not a slow figure)."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


@dataclass(frozen=True)
class _Failed:
    error: Exception


@dataclass
class BenchContext:
    database_url: str
    redis_url: str
    fake: FakeMailgunProcess
    options: Options
    apps: list[Flask] = field(default_factory=list)
    configs: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: results shared between targets measured in the same runs (1-4, 5-6)
    cache: dict[str, Any] = field(default_factory=dict)

    def app_config(self, *, batch_size: int = 1000, **extra: Any) -> dict[str, Any]:
        """A JSON-able host app config on its own RQ queue (workers in subprocesses use it)."""
        config: dict[str, Any] = {
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "CAMPAIGN_RETRY_REDIS_URL": self.redis_url,
            "CAMPAIGN_RETRY_QUEUE": f"bench_{uuid.uuid4().hex[:10]}",
            "CAMPAIGN_RETRY_BATCH_SIZE": batch_size,
            **self.fake.app_config(),
        }
        config.update(extra)
        return config

    def make_app(self, config: dict[str, Any]) -> Flask:
        app = hostapp.create_app(config)
        self.apps.append(app)
        self.configs[id(app)] = dict(config)
        return app

    def config_of(self, app: Flask) -> dict[str, Any]:
        """The JSON config ``app`` was made from (for worker subprocesses of the same app)."""
        return dict(self.configs[id(app)])

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per session; a failure is remembered too (and raised again)."""
        if key not in self.cache:
            try:
                self.cache[key] = compute()
            except Exception as error:
                self.cache[key] = _Failed(error)
        value = self.cache[key]
        if isinstance(value, _Failed):
            raise BenchError(f"{key} failed earlier in this run: {value.error}") from value.error
        return cast(T, value)

    def close(self) -> None:
        for app in self.apps:
            with app.app_context():
                hostapp.db.session.remove()
                for engine in hostapp.db.engines.values():
                    engine.dispose()
        self.apps = []


@contextmanager
def bench_context(options: Options) -> Iterator[BenchContext]:
    """A fresh ``fcr_bench_*`` database with the host's tables, Redis DB 9, the fake's process."""
    with ExitStack() as stack:
        database_url = stack.enter_context(bench_database())
        redis_url = stack.enter_context(bench_redis())
        fake = stack.enter_context(FakeMailgunProcess())
        ctx = BenchContext(database_url, redis_url, fake, options)
        stack.callback(ctx.close)
        setup = ctx.make_app(ctx.app_config())
        with setup.app_context():
            hostapp.db.create_all()
        yield ctx


def reset_tracking(app: Flask) -> None:
    """Empty the extension's tables and checkpoint, so compared runs start from the same state."""
    with app.app_context():
        session = hostapp.db.session
        session.execute(
            sa.text(
                "TRUNCATE campaign_retry_recipient, campaign_retry_batch, campaign_retry_attempt"
            )
        )
        session.commit()
        session.execute(sa.text("CHECKPOINT"))
        session.commit()
