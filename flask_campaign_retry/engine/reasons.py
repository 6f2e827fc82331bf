"""What an exception may say to a person, and whether it was a passing database fault.

Reasons land in ``failure_reason``, the JSON API, the panel and admin alerts. A database error's
text holds the SQL statement and its bound parameters (other recipients' addresses), and the
driver's own message can quote a row ("Key (email)=(...) already exists"): none of that is shown,
only the kind of error. The full exception goes to the log.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from flask_campaign_retry.errors import CampaignRetryError

#: SQLSTATEs worth running a transaction again for: serialization failure, deadlock.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
#: Modules of database drivers whose exception text may quote statements or rows.
_DRIVER_MODULES = ("sqlite3", "psycopg", "psycopg2", "pymysql", "MySQLdb", "asyncpg", "pg8000")
MAX_REASON = 300


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return True
    module = type(exc).__module__.split(".", 1)[0]
    return module in _DRIVER_MODULES


def is_transient(exc: BaseException) -> bool:
    """True for a fault that may be gone in a moment: a dropped or refused database connection,
    a serialization failure or deadlock, a locked SQLite file, a connection error of any kind."""
    for error in _chain(exc):
        if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sa.exc.OperationalError | sa.exc.DisconnectionError):
            return True
        if isinstance(error, sa.exc.TimeoutError | ConnectionError | TimeoutError):
            return True
        if getattr(getattr(error, "orig", error), "pgcode", None) in _RETRYABLE_SQLSTATES:
            return True
    return False


def describe(exc: BaseException) -> str:
    """A short text about ``exc`` a person may see: a database error is named by its kind only."""
    for error in _chain(exc):
        if _is_database_error(error):
            orig = getattr(error, "orig", None)
            kind = type(orig).__name__ if orig is not None else type(error).__name__
            return f"a database error ({kind}; the details are in the log)"
    if isinstance(exc, CampaignRetryError):
        return str(exc)[:MAX_REASON]
    text = str(exc).replace("\r", " ").replace("\n", " ").replace("\x00", "")
    return f"{type(exc).__name__}: {text}"[:MAX_REASON] if text else type(exc).__name__
