"""Provider failover: a circuit breaker per provider, its state in Redis so every worker agrees.

:func:`with_failover` is applied, in ``engine.batch_job``, to the (key, provider) pair chosen for
a batch, right where it is obtained. With no ``CAMPAIGN_RETRY_FALLBACK_PROVIDER`` it returns the
pair unchanged. Otherwise:

- closed: the primary sends, through a wrapper that watches every call. An *outage-type* failure
  (a transient server error, a connection failure, a gateway 502/504) adds one to the run;
  ``CAMPAIGN_RETRY_BREAKER_THRESHOLD`` in a row open the breaker for
  ``CAMPAIGN_RETRY_BREAKER_COOLDOWN`` seconds and raise ``provider.failover``. Rate limits
  ("wait", not "down") and permanent refusals neither count nor reset the run; an accepted call
  resets it.
- open: new batches go to the fallback, and the batch row records the fallback's key.
- after the cooldown: one worker (Redis ``SET NX``) sends its batch through the primary as a
  probe; the others keep using the fallback. Success closes the breaker and raises
  ``provider.recovered``; an outage-type failure opens it for another cooldown.

No duplicates by construction: a batch holding a recipient whose outcome at the primary was
UNCERTAIN (resent only when a person included them in a retry) is never handed to the fallback;
it stays with the primary. Redis trouble reading the breaker means "closed" (the primary), never
an unexplained switch.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

from flask_campaign_retry.alerts.config import EVENT_PROVIDER_FAILOVER, EVENT_PROVIDER_RECOVERED
from flask_campaign_retry.alerts.provider_events import notify_provider_event
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.providers.base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    Provider,
    ProviderError,
    RecipientResults,
)
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import FailureKind, RecipientStatus

log = logging.getLogger("flask_campaign_retry")

EPOCH = datetime(1970, 1, 1)
RATE_LIMIT_CODES = frozenset({420, 429})
#: How long a closed breaker remembers a run of failures without a new one.
RUN_MEMORY_SECONDS = 3600


def is_outage(error: ProviderError) -> bool:
    """True for failures that say the provider is down, not "wait" or "no"."""
    if error.resume_at is not None or error.code in RATE_LIMIT_CODES:
        return False
    if error.kind is FailureKind.TRANSIENT:
        return error.code is None or error.code >= 500  # connection failures, 5xx
    if error.kind is FailureKind.UNCERTAIN:
        return error.code is not None and error.code >= 500  # a gateway gave up
    return False


def _seconds(moment: datetime) -> float:
    return (moment - EPOCH).total_seconds()


def _moment(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


@dataclass
class Breaker:
    """The breaker of one provider: a Redis hash ``failures``, ``episode``, ``open_until``."""

    state: AppState
    connection: Redis
    provider: str

    @property
    def key(self) -> str:
        return f"campaign_retry:{self.state.settings.queue_name}:breaker:{self.provider}"

    @property
    def probe_key(self) -> str:
        return self.key + ":probe"

    def _read(self) -> dict[str, str]:
        raw = self.connection.hgetall(self.key)
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in raw.items()
        }

    def route(self, now: datetime) -> str:
        """ "closed" (use the primary), "probe" (use it once to test it) or "open"."""
        data = self._read()
        if "episode" not in data:
            return "closed"
        if float(data.get("open_until", "0")) > _seconds(now):
            return "open"
        cooldown = max(1, int(self.state.settings.breaker_cooldown))
        if self.connection.set(self.probe_key, "1", nx=True, ex=cooldown):
            return "probe"
        return "open"

    def failed(self, now: datetime) -> None:
        """Count one outage-type failure; open (or re-open) the breaker when the run is long."""
        settings = self.state.settings
        failures = int(self.connection.hincrby(self.key, "failures", 1))
        data = self._read()
        if "episode" not in data:
            # A run is "in a row": a failure long ago followed by silence does not count.
            self.connection.expire(self.key, RUN_MEMORY_SECONDS)
        open_until = now + timedelta(seconds=settings.breaker_cooldown)
        if "episode" in data:
            if float(data.get("open_until", "0")) <= _seconds(now):
                # A failed probe: open for another cooldown, let the next probe wait for it.
                self.connection.hset(self.key, "open_until", _seconds(open_until))
                self.connection.delete(self.probe_key)
            return
        if failures < settings.breaker_threshold:
            return
        episode = uuid.uuid4().hex
        if not self.connection.hsetnx(self.key, "episode", episode):
            return  # another worker opened it a moment ago
        self.connection.hset(self.key, "open_until", _seconds(open_until))
        self.connection.persist(self.key)  # open until a probe succeeds, however long
        log.warning(
            "provider %s: %d outage-type failures in a row, failing over to %s until %s",
            self.provider,
            failures,
            settings.fallback_provider,
            open_until.isoformat(timespec="seconds"),
            extra={
                "campaign_retry": {
                    "event": "provider_failover",
                    "provider": self.provider,
                    "fallback": settings.fallback_provider,
                }
            },
        )
        notify_provider_event(
            self.state,
            EVENT_PROVIDER_FAILOVER,
            provider=self.provider,
            fallback=settings.fallback_provider,
            episode=episode,
            failures=failures,
            open_until=open_until,
        )

    def succeeded(self) -> None:
        """An accepted call: end the run, and close the breaker if it was open."""
        data = self._read()
        if "episode" not in data:
            if data.get("failures", "0") != "0":
                self.connection.hset(self.key, "failures", 0)
            return
        if not self.connection.delete(self.key):
            return  # another worker closed it first
        self.connection.delete(self.probe_key)
        log.warning("provider %s answers again: breaker closed", self.provider)
        notify_provider_event(
            self.state,
            EVENT_PROVIDER_RECOVERED,
            provider=self.provider,
            fallback=self.state.settings.fallback_provider,
            episode=data["episode"],
            failures=int(data.get("failures", "0")),
            open_until=_moment(float(data.get("open_until", "0"))),
        )


class ObservedProvider:
    """The primary, watched: each call's outcome feeds its breaker (never alters the call)."""

    def __init__(self, inner: Provider, breaker: Breaker) -> None:
        self.inner = inner
        self.breaker = breaker
        self.name = inner.name

    def send_batch(
        self,
        message: OutgoingMessage,
        recipients: Sequence[BatchRecipient],
        ref: BatchRef,
    ) -> Accepted | RecipientResults:
        try:
            accepted = self.inner.send_batch(message, recipients, ref)
        except ProviderError as error:
            if is_outage(error):
                self._safely(lambda: self.breaker.failed(utcnow()))
            raise
        self._safely(self.breaker.succeeded)
        return accepted

    def _safely(self, update: Callable[[], None]) -> None:
        try:
            update()
        except RedisError as exc:
            log.warning("circuit breaker not updated: Redis is unavailable (%s)", exc)


def _holds_uncertain(state: AppState, batch_id: int) -> bool:
    """Whether the batch carries a recipient whose outcome at a provider was unknown."""
    r = state.models.recipient.__table__.c
    found = state.db.session.execute(
        sa.select(sa.literal(1))
        .where(
            r.batch_id == batch_id,
            r.status == RecipientStatus.PENDING,  # taken by this claim (see engine.claims)
            r.failure_kind == FailureKind.UNCERTAIN.value,
        )
        .limit(1)
    ).first()
    return found is not None


def with_failover(
    state: AppState, app: Flask, key: str, provider: Provider, batch_id: int
) -> tuple[str, Provider]:
    """The (key, provider) that sends batch ``batch_id``: ``(key, provider)`` watched by its
    breaker, or the fallback's while the breaker is open (see the module docstring)."""
    fallback_key = state.settings.fallback_provider
    if fallback_key is None or key == fallback_key:
        return key, provider
    try:
        breaker = Breaker(state, state.queue(app).connection, key)
        route = breaker.route(utcnow())
    except RedisError as exc:
        log.warning("circuit breaker of %s unreadable, using it (%s)", key, exc)
        return key, provider
    if route == "open" and not _holds_uncertain(state, batch_id):
        fallback = state.fallback_provider(app)
        if fallback is not None:
            return fallback_key, fallback
    return key, ObservedProvider(provider, breaker)
