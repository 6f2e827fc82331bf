"""Where the benchmarks run: their own PostgreSQL database and Redis database, the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import redis
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "FCR_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
#: Redis database 9 belongs to the benchmarks (the tests use 11-15); flushed at start and end
#: unless FCR_BENCH_FLUSH_REDIS=0 (the smoke test runs them in the test session's database).
REDIS_URL = os.environ.get("FCR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
FLUSH_REDIS = os.environ.get("FCR_BENCH_FLUSH_REDIS", "1") != "0"
DATABASE_PREFIX = "fcr_bench_"


def _admin_engine() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@contextmanager
def bench_database() -> Iterator[str]:
    """Create a fresh ``fcr_bench_*`` database, yield its URL, drop it afterwards."""
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
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


@contextmanager
def bench_redis() -> Iterator[str]:
    """Yield the benchmarks' Redis URL, flushed before and after (see ``FLUSH_REDIS``).

    Every app of a run has its own queue name, so nothing else in the database is touched."""
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    if FLUSH_REDIS:
        client.flushdb()
    try:
        yield REDIS_URL
    finally:
        if FLUSH_REDIS:
            client.flushdb()
        client.close()


def _meminfo_mb(key: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def engine_revision() -> str:
    """The commit the engine was measured at, and whether its files had uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "flask_campaign_retry")
    return head + (" + uncommitted changes in flask_campaign_retry/" if dirty else "")


def machine_lines() -> list[str]:
    """What the figures were measured on (printed at the start of every run)."""
    with _admin_engine().connect() as conn:
        server = conn.execute(sa.text("SHOW server_version")).scalar_one()
        sync = conn.execute(sa.text("SHOW synchronous_commit")).scalar_one()
    info = redis.Redis.from_url(REDIS_URL).info("server")
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"{_meminfo_mb('MemTotal')} MB RAM, {platform.platform()}",
        f"load average at start: {load_average()} (shared machine: other engineers' tests run "
        "concurrently, so compare the ratios measured side by side, not absolute times)",
        f"python {platform.python_version()}, PostgreSQL {server} "
        f"(synchronous_commit={sync}), Redis {info.get('redis_version')}",
        f"engine: flask_campaign_retry at {engine_revision()}",
    ]
