"""Where admin-webhook deliveries live between tries: one Redis hash per delivery id.

A delivery is one event for one URL. Its hash holds ``url``, ``event``, ``event_id``,
``campaign_id``, the JSON ``body`` (which holds no secret), ``state``, ``tries``,
``last_error``, ``last_status``, ``next_try_at`` and timestamps, and expires
:data:`RECORD_TTL` after its last change. Ids come from one counter per app, so RQ jobs carry
an integer only. Keys are prefixed with the app's queue name, so apps sharing a Redis never see
each other's deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from redis import Redis
from redis.typing import EncodableT, FieldT

from flask_campaign_retry.clock import isoformat_utc, utcnow
from flask_campaign_retry.state import AppState

RECORD_TTL = int(timedelta(days=7).total_seconds())

PENDING = "pending"
DELIVERED = "delivered"
REFUSED = "refused"
GAVE_UP = "gave_up"
TERMINAL = frozenset({DELIVERED, REFUSED, GAVE_UP})


@dataclass(frozen=True)
class Delivery:
    """What Redis holds about one delivery (see :func:`get_delivery`)."""

    id: int
    url: str
    event: str
    event_id: str
    campaign_id: str
    body: str
    state: str
    tries: int
    last_error: str | None
    last_status: int | None
    next_try_at: str | None
    updated_at: str | None


def namespace(state: AppState) -> str:
    """Prefix of this app's admin-webhook keys in Redis."""
    return f"campaign_retry:{state.settings.queue_name}:admin_webhook"


def record_key(state: AppState, delivery_id: int) -> str:
    """The Redis key of delivery ``delivery_id``'s hash."""
    return f"{namespace(state)}:delivery:{delivery_id}"


def _now() -> str:
    return isoformat_utc(utcnow()) or ""


def create_deliveries(
    state: AppState,
    connection: Redis,
    *,
    urls: tuple[str, ...],
    event: str,
    event_id: str,
    campaign_id: str,
    body: str,
) -> list[int]:
    """Store one pending delivery per URL and return their ids (the caller enqueues them)."""
    last = int(connection.incrby(f"{namespace(state)}:next_id", len(urls)))
    ids = list(range(last - len(urls) + 1, last + 1))
    now = _now()
    pipe = connection.pipeline()
    for delivery_id, url in zip(ids, urls, strict=True):
        key = record_key(state, delivery_id)
        fields: dict[FieldT, EncodableT] = {
            "url": url,
            "event": event,
            "event_id": event_id,
            "campaign_id": campaign_id,
            "body": body,
            "state": PENDING,
            "tries": 0,
            "created_at": now,
            "updated_at": now,
        }
        pipe.hset(key, mapping=fields)
        pipe.expire(key, RECORD_TTL)
    pipe.execute()
    return ids


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read_record(connection: Redis, key: str) -> dict[str, str]:
    """The raw fields of a delivery hash as text; empty when it is unknown or expired."""
    raw: dict[bytes | str, bytes | str] = connection.hgetall(key)
    return {_text(name): _text(value) for name, value in raw.items()}


def update_record(connection: Redis, key: str, **fields: str | int | None) -> None:
    """Set ``fields`` (None stores an empty value), stamp ``updated_at`` and renew the TTL."""
    values: dict[FieldT, EncodableT] = {
        name: ("" if value is None else value) for name, value in fields.items()
    }
    values["updated_at"] = _now()
    pipe = connection.pipeline()
    pipe.hset(key, mapping=values)
    pipe.expire(key, RECORD_TTL)
    pipe.execute()


def get_delivery(state: AppState, connection: Redis, delivery_id: int) -> Delivery | None:
    """Delivery ``delivery_id`` as stored, or None when unknown or expired.

    ``connection`` is the app's Redis, ``state.queue(app).connection``.
    """
    fields = read_record(connection, record_key(state, delivery_id))
    if not fields:
        return None
    status = fields.get("last_status")
    return Delivery(
        id=delivery_id,
        url=fields["url"],
        event=fields["event"],
        event_id=fields["event_id"],
        campaign_id=fields["campaign_id"],
        body=fields["body"],
        state=fields["state"],
        tries=int(fields.get("tries") or 0),
        last_error=fields.get("last_error") or None,
        last_status=int(status) if status else None,
        next_try_at=fields.get("next_try_at") or None,
        updated_at=fields.get("updated_at") or None,
    )
