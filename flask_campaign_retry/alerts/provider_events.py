"""Admin-webhook events about a provider rather than a campaign: failover and recovery.

``provider.failover``
    The circuit breaker of a provider opened after a run of outage-type failures: new batches go
    to ``CAMPAIGN_RETRY_FALLBACK_PROVIDER`` until a probe succeeds.
``provider.recovered``
    A probe batch went through the primary again: the breaker closed.

Each event is queued at most once per outage (``episode``) however many workers see it, with
the same signed delivery as the campaign events (:mod:`.delivery`). Payload::

    {"event": "provider.failover", "event_id": "…", "occurred_at": "2026-…Z",
     "provider": "mailgun", "fallback_provider": "smtp", "episode": "…",
     "consecutive_failures": 5, "open_until": "2026-…Z"}

Like :func:`.notify.notify_attempt_finished`, it never raises into the send it reports on.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime

from flask import current_app
from redis.exceptions import RedisError

from flask_campaign_retry.alerts.config import load_webhook_options
from flask_campaign_retry.alerts.delivery import JOB
from flask_campaign_retry.alerts.notify import DEDUPE_TTL
from flask_campaign_retry.alerts.store import create_deliveries, namespace
from flask_campaign_retry.clock import isoformat_utc, utcnow
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.state import AppState

log = logging.getLogger("flask_campaign_retry")


def notify_provider_event(
    state: AppState,
    event: str,
    *,
    provider: str,
    fallback: str | None,
    episode: str,
    failures: int,
    open_until: datetime | None,
) -> list[int]:
    """Queue ``event`` for every admin URL once per (provider, event, episode); never raises."""
    if not state.settings.admin_webhook_urls:
        return []
    try:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        if event not in load_webhook_options(app.config).events:
            return []
        backend = state.queue(app)
        connection = backend.connection
        event_id = uuid.uuid4().hex
        dedupe = f"{namespace(state)}:dedupe:provider:{provider}:{event}:{episode}"
        if not connection.set(dedupe, event_id, nx=True, ex=DEDUPE_TTL):
            return []
        payload = {
            "event": event,
            "event_id": event_id,
            "occurred_at": isoformat_utc(utcnow()),
            "provider": provider,
            "fallback_provider": fallback,
            "episode": episode,
            "consecutive_failures": failures,
            "open_until": isoformat_utc(open_until),
        }
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        ids = create_deliveries(
            state,
            connection,
            urls=state.settings.admin_webhook_urls,
            event=event,
            event_id=event_id,
            campaign_id="",
            body=body,
        )
        for delivery_id in ids:
            backend.enqueue(JOB, delivery_id)
        log.info("admin webhook %s for provider %s queued as deliveries %s", event, provider, ids)
        return ids
    except ConfigurationError as exc:
        log.error("admin webhook %s not sent: invalid configuration: %s", event, exc)
    except RedisError as exc:
        log.error("admin webhook %s not sent: Redis is unavailable (%s)", event, type(exc).__name__)
    except Exception:  # an alert must never break the send it reports on; logged with traceback
        log.exception("admin webhook %s not sent: unexpected error", event)
    return []
