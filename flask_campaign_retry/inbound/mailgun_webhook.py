"""``POST <CAMPAIGN_RETRY_URL_PREFIX>/webhooks/mailgun``: Mailgun's delivery events.

Point Mailgun's *delivered*, *permanent failure* and *temporary failure* webhooks (and
optionally *accepted*) at this URL. Each request goes, in order:

=====================================================  =====  ==================================
check                                                  code   why
=====================================================  =====  ==================================
``MAILGUN_WEBHOOK_SIGNING_KEY`` is not set             503    our misconfiguration: Mailgun
                                                              retries for ~8 h, so nothing is
                                                              lost once the key is set
body is not a JSON object, no valid ``signature``      406    reject; a retry cannot fix it
signature does not verify                              406    reject; nothing is read or written
timestamp older than the tolerance (or in the future)  406    reject (replay window closed)
event type we do not use (opened, clicked ...)         200    acknowledged, ignored
no ``v:`` variables of ours / ids or address disagree  200    acknowledged, ignored (other mail)
token seen before                                      406    reject without retries (replay)
Redis unreachable                                      503    Mailgun retries later
applied, or already known                              200    ``{"status": "changed"|...}``
=====================================================  =====  ==================================

No session or cookie is used and CSRF does not apply: the signature is the authentication.
If the host uses Flask-WTF's ``CSRFProtect``, this blueprint is exempted from it (also when
``CSRFProtect`` is set up after ``init_app``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC
from typing import Any, Final

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from werkzeug.exceptions import RequestEntityTooLarge

from flask_campaign_retry.clock import as_naive_utc
from flask_campaign_retry.engine.refresh_job import campaign_truth_changed
from flask_campaign_retry.providers.base import LookupOutcome
from flask_campaign_retry.providers.mailgun.events import (
    ATTEMPT_VAR,
    BATCH_VAR,
    CAMPAIGN_VAR,
    RECIPIENT_VAR,
    event_outcome,
    event_time,
    failure_details,
    id_variable,
    variable,
)
from flask_campaign_retry.providers.mailgun.signature import (
    SIGNING_KEY_CONFIG,
    ReplayCache,
    WebhookSignature,
    signature_valid,
    timestamp_fresh,
    webhook_tolerance,
)
from flask_campaign_retry.reconciliation.evidence import (
    Applied,
    EventTarget,
    Evidence,
    apply_evidence,
)
from flask_campaign_retry.state import get_state

log = logging.getLogger("flask_campaign_retry")

WEBHOOK_PATH: Final = "/webhooks/mailgun"
#: Mailgun's event JSON is a few kilobytes; anything far larger is not a Mailgun webhook.
MAX_BODY_BYTES: Final = 256 * 1024

bp = Blueprint("campaign_retry_mailgun", __name__)


def register_mailgun_webhook(app: Flask) -> None:
    """Mount the webhook at the app's URL prefix (called once from ``init_app``).

    Validates ``CAMPAIGN_RETRY_WEBHOOK_TOLERANCE`` now, so a bad value fails at start, and
    warns when the Mailgun provider is used without a signing key (the route then answers 503).
    """
    webhook_tolerance(app.config)
    app.register_blueprint(bp, url_prefix=get_state(app).settings.url_prefix or None)
    _exempt_from_host_csrf(app)
    uses_mailgun = get_state(app).settings.provider == "mailgun"
    if uses_mailgun and not app.config.get(SIGNING_KEY_CONFIG):
        log.warning(
            "%s is not set: the Mailgun webhook route answers 503 until it is "
            "(Mailgun dashboard > Sending > Webhooks > HTTP webhook signing key).",
            SIGNING_KEY_CONFIG,
        )


def _exempt_from_host_csrf(app: Flask) -> None:
    csrf = app.extensions.get("csrf")
    exempt = getattr(csrf, "exempt", None)
    if callable(exempt):
        exempt(bp)


@bp.before_app_request
def _exempt_when_csrf_came_later() -> None:
    """A host may set up ``CSRFProtect`` after ``init_app``; this hook was registered first, so
    it runs before CSRFProtect's own check and exempts the webhook in time."""
    if request.blueprint == bp.name:
        _exempt_from_host_csrf(current_app)


def _answer(status: int, outcome: str, reason: str | None = None) -> ResponseReturnValue:
    body: dict[str, Any] = {"status": outcome}
    if reason is not None:
        body["reason"] = reason
    return jsonify(body), status


def _body() -> Mapping[str, Any] | None:
    request.max_content_length = MAX_BODY_BYTES
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def parse_event(event: Mapping[str, Any]) -> tuple[EventTarget, Evidence] | str:
    """The row and the evidence a Mailgun event carries, or why it is not ours to apply."""
    outcome = event_outcome(event)
    if outcome is None:
        return f"event type {str(event.get('event'))[:40]!r} is not used"
    variables = event.get("user-variables")
    variables = variables if isinstance(variables, Mapping) else {}
    campaign = variable(variables, CAMPAIGN_VAR)
    attempt_id = id_variable(variables, ATTEMPT_VAR)
    batch_id = id_variable(variables, BATCH_VAR)
    recipient_id = id_variable(variables, RECIPIENT_VAR)
    email = event.get("recipient")
    at = event_time(event)
    if (
        campaign is None
        or attempt_id is None
        or batch_id is None
        or recipient_id is None
        or not isinstance(email, str)
        or at is None
    ):
        return "not a mail sent by flask-campaign-retry"
    code, detail = None, ""
    if outcome in (LookupOutcome.FAILED_PERMANENT, LookupOutcome.FAILED_TEMPORARY):
        code, detail = failure_details(event)
    target = EventTarget(campaign, attempt_id, batch_id, recipient_id, email[:320])
    return target, Evidence(outcome, as_naive_utc(at.astimezone(UTC)), code, detail)


@bp.post(WEBHOOK_PATH)
def mailgun() -> ResponseReturnValue:
    """Verify, deduplicate and apply one Mailgun event (see the module docstring)."""
    signing_key = current_app.config.get(SIGNING_KEY_CONFIG)
    if not isinstance(signing_key, str) or not signing_key:
        log.error("Mailgun webhook refused with 503: %s is not set.", SIGNING_KEY_CONFIG)
        return _answer(503, "not_configured", f"{SIGNING_KEY_CONFIG} is not set")
    body = _body()
    signature = WebhookSignature.parse(body.get("signature")) if body is not None else None
    if body is None or signature is None:
        return _answer(406, "rejected", "the body is not a signed Mailgun JSON webhook")
    if not signature_valid(signing_key, signature):
        log.warning("Mailgun webhook refused: the signature does not verify")
        return _answer(406, "rejected", "the signature does not verify")
    now, tolerance = time.time(), webhook_tolerance(current_app.config)
    if not timestamp_fresh(signature, now, tolerance):
        log.warning("Mailgun webhook refused: timestamp %s is stale", signature.timestamp)
        return _answer(406, "rejected", "the timestamp is outside the accepted window")
    event = body.get("event-data")
    if not isinstance(event, Mapping):
        return _answer(406, "rejected", "event-data is missing")
    parsed = parse_event(event)
    if isinstance(parsed, str):
        return _answer(200, "ignored", parsed)
    target, evidence = parsed
    state = get_state()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = ReplayCache(state.queue(app).connection, state.settings.queue_name)
    try:
        if not cache.claim(signature, now, tolerance):
            log.warning("Mailgun webhook refused: token replayed")
            return _answer(406, "rejected", "this token was seen before (replay)")
    except RedisError as exc:
        log.error("Mailgun webhook answered 503: Redis is unreachable (%s)", type(exc).__name__)
        return _answer(503, "unavailable", "the replay cache is unreachable")
    try:
        applied = apply_evidence(state, target, evidence)
    except Exception:
        _release(cache, signature)  # so that Mailgun's retry of this event is not a "replay"
        raise
    log.info(
        "mailgun event %s for recipient %s (batch %s): %s",
        evidence.kind.value,
        target.recipient_id,
        target.batch_id,
        applied.value,
    )
    if applied is Applied.UNKNOWN:
        return _answer(200, "ignored", "no batch and recipient of ours match these ids")
    if applied is Applied.CHANGED:
        # The campaign's status and counters follow its recipients (coalesced recount).
        campaign_truth_changed(state, target.campaign_id)
    return _answer(200, applied.value)


def _release(cache: ReplayCache, signature: WebhookSignature) -> None:
    try:
        cache.release(signature)
    except RedisError:
        log.exception("could not release Mailgun webhook token after a failure")
