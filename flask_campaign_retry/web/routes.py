"""The ``campaign_retry`` blueprint, mounted at ``CAMPAIGN_RETRY_URL_PREFIX``.

=======  =====================  ===========================================================
method   path                   answers
=======  =====================  ===========================================================
POST     ``/<id>/send``         202 started, 403, 404, 409 (not sendable), 400 (CSRF/input),
                                503 (the queue is unavailable: nothing changed, try again)
POST     ``/<id>/retry``        202 started, 403, 404, 409 (refused: code and reason), 400, 503
POST     ``/<id>/clone``        201 created with ``Location``, 403, 404, 409, 400
GET      ``/<id>/delivery``     200 delivery report (JSON), 403, 404
GET      ``/<id>/failures``     200 a page of failed recipients (JSON), 400, 403, 404
POST     ``/<id>/schedule``     200 scheduled / cancelled, 403, 404, 409, 400 (bad time)
GET      ``/<id>/retry-preview`` 200 who a retry would send to (JSON), 400, 403, 404
=======  =====================  ===========================================================

Each state-changing request goes: CSRF (400) -> campaign (404) -> ``authorize`` (403) ->
fields (400) -> the same :class:`CampaignRetry` method the CLI calls (409 when refused).
JSON clients get JSON; an HTML form post is redirected back (``next`` field, a same-host
Referer, or the site root) with a flash message that states the outcome or the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Flask, current_app, flash, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from flask_campaign_retry.campaign_fields import fields as mixin_fields
from flask_campaign_retry.clock import isoformat_utc
from flask_campaign_retry.errors import InvalidScheduleTime, QueueUnavailable, TransitionRefused
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.web.http_io import (
    CampaignNotFound,
    InvalidField,
    QueueDown,
    Refused,
    flag,
    handle_http_error,
    limit_request_body,
    optional_int,
    request_fields,
    wants_json,
)
from flask_campaign_retry.web.lookup import load_campaign
from flask_campaign_retry.web.options import load_web_options
from flask_campaign_retry.web.panel import campaign_retry_panel
from flask_campaign_retry.web.panel_text import display_time
from flask_campaign_retry.web.report import delivery_report, failed_recipients_page
from flask_campaign_retry.web.security import redirect_target, require_csrf, require_permission

bp = Blueprint(
    "campaign_retry",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/_campaign_retry_static",
)
bp.before_request(limit_request_body)
bp.register_error_handler(HTTPException, handle_http_error)
for _code in (400, 403, 404, 409, 413, 415, 500, 503):
    # Code-specific handlers outrank a host's class-based ones, so JSON clients always get
    # JSON; browsers still get the exception (and so the host's own page for that code).
    bp.register_error_handler(_code, handle_http_error)


def register_routes(app: Flask) -> None:
    """Mount the blueprint at the app's URL prefix and expose the panel's template global."""
    state = get_state(app)
    app.register_blueprint(bp, url_prefix=state.settings.url_prefix or None)
    app.add_template_global(campaign_retry_panel, "campaign_retry_panel")


def _campaign_or_404(state: AppState, campaign_id: str) -> Any:
    campaign = load_campaign(state, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"There is no campaign with id {campaign_id[:40]!r}.")
    return campaign


def _delivery_url(campaign: Any) -> str:
    return url_for("campaign_retry.delivery", campaign_id=str(campaign.id))


Outcome = tuple[dict[str, Any], int, str, str | None]
"""What an action returns: JSON body, status, flash message, Location (or None)."""


def _state_changing(
    campaign_id: str, action: str, perform: Callable[[Any, Mapping[str, Any]], Outcome]
) -> ResponseReturnValue:
    """The shared path of the POST routes (see the module docstring for the order)."""
    state = get_state()
    require_csrf()
    campaign = _campaign_or_404(state, campaign_id)
    require_permission(state, campaign, action)
    fields = request_fields()
    json_client = wants_json()
    back = _back_url()
    try:
        body, status, message, location = perform(campaign, fields)
    except TransitionRefused as refusal:
        if json_client:
            raise Refused(refusal) from None
        flash(refusal.reason, _flash_category("error"))
        return redirect(back, 303)
    except QueueUnavailable:
        # Redis is down: nothing changed; JSON clients get 503, browsers the message.
        if json_client:
            raise QueueDown() from None
        flash(QueueUnavailable.reason, _flash_category("error"))
        return redirect(back, 303)
    if json_client:
        response = jsonify(body)
        response.status_code = status
        if location is not None:
            response.headers["Location"] = location
        return response
    flash(message, _flash_category("success"))
    # A new campaign (clone) opens on the host's own page for it, when the host says where.
    return redirect(body.get("page_url") or back, 303)


def _flash_category(outcome: str) -> str:
    return load_web_options(current_app.config).flash_categories[outcome]


def _back_url() -> str:
    return redirect_target(default=request.script_root + "/")


@bp.post("/<campaign_id>/send")
def send(campaign_id: str) -> ResponseReturnValue:
    """Start the first send of a DRAFT or SCHEDULED campaign."""

    def perform(campaign: Any, fields: Mapping[str, Any]) -> Outcome:
        attempt = get_state().extension.send(campaign)
        body = _started(campaign, attempt)
        return body, 202, "Sending started.", body["delivery_url"]

    return _state_changing(campaign_id, "send", perform)


@bp.post("/<campaign_id>/retry")
def retry(campaign_id: str) -> ResponseReturnValue:
    """Retry Send: resend to the recipients who did not get it (field ``include_uncertain``)."""

    def perform(campaign: Any, fields: Mapping[str, Any]) -> Outcome:
        include_uncertain = flag(fields, "include_uncertain")
        attempt = get_state().extension.retry(campaign, include_uncertain=include_uncertain)
        body = _started(campaign, attempt)
        message = (
            f"Retry started (attempt {attempt.number}): sending again only to the recipients "
            "who did not get the email."
        )
        return body, 202, message, body["delivery_url"]

    return _state_changing(campaign_id, "retry", perform)


@bp.post("/<campaign_id>/clone")
def clone(campaign_id: str) -> ResponseReturnValue:
    """Copy the campaign into a new DRAFT (field ``only_unsent``)."""

    def perform(campaign: Any, fields: Mapping[str, Any]) -> Outcome:
        only_unsent = flag(fields, "only_unsent")
        copy = get_state().extension.clone(campaign, only_unsent=only_unsent)
        location = _delivery_url(copy)
        body = {
            "id": copy.id,
            "status": "DRAFT",
            "cloned_from_id": campaign.id,
            "only_unsent": only_unsent,
            "total_recipients": mixin_fields(copy).total_recipients,
            "delivery_url": location,
        }
        page_hook = get_state().extension.hooks.campaign_url
        if page_hook is not None:
            body["page_url"] = page_hook(copy)
        message = f"Cloned into a new draft (#{copy.id})" + (
            f" for the {mixin_fields(copy).total_recipients} recipients who did not get it."
            if only_unsent
            else "."
        )
        return body, 201, message, location

    return _state_changing(campaign_id, "clone", perform)


def _schedule_time(fields: Mapping[str, Any]) -> str:
    """The ``at`` field (ISO 8601 with a zone), or ``at_utc`` (a zoneless time the form labels
    as UTC, as an ``<input type="datetime-local">`` sends it)."""
    at, at_utc = fields.get("at"), fields.get("at_utc")
    if at is not None and at_utc is not None:
        raise InvalidField("Give either at or at_utc, not both.")
    value = at if at is not None else at_utc
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(
            "at must be the time to send at, in ISO 8601 with a zone, e.g. 2026-12-24T09:00:00Z."
        )
    if at_utc is not None:
        text = value.strip()
        if text.endswith(("Z", "z")) or "+" in text[10:] or "-" in text[10:]:
            raise InvalidField("at_utc is UTC already: leave out the zone, or use at instead.")
        return text + "Z"
    return value


@bp.post("/<campaign_id>/schedule")
def schedule(campaign_id: str) -> ResponseReturnValue:
    """Schedule a DRAFT (or move a SCHEDULED) campaign to ``at``; ``cancel`` moves it back."""

    def perform(campaign: Any, fields: Mapping[str, Any]) -> Outcome:
        extension = get_state().extension
        url = _delivery_url(campaign)
        if flag(fields, "cancel"):
            extension.cancel_schedule(campaign)
            body = {"campaign_id": campaign.id, "status": "DRAFT", "scheduled_at": None}
            return body, 200, "Schedule cancelled: the campaign is a draft again.", url
        try:
            when = extension.schedule(campaign, _schedule_time(fields))
        except (InvalidScheduleTime, InvalidField) as exc:
            reason = exc.description if isinstance(exc, InvalidField) else str(exc)
            if wants_json():
                raise InvalidField(reason) from None
            # A person at the panel's form: back to the page with the reason, nothing lost.
            raise TransitionRefused("invalid_time", str(reason)) from None
        body = {
            "campaign_id": campaign.id,
            "status": "SCHEDULED",
            "scheduled_at": isoformat_utc(when),
            "delivery_url": url,
        }
        return body, 200, f"Scheduled for {display_time(when)}.", url

    return _state_changing(campaign_id, "send", perform)


@bp.get("/<campaign_id>/retry-preview")
def retry_preview(campaign_id: str) -> ResponseReturnValue:
    """Who a retry would send to now: ``?include_uncertain=1&after=<cursor>&limit=<1..200>``."""
    state = get_state()
    campaign = _campaign_or_404(state, campaign_id)
    require_permission(state, campaign, "view")
    include_uncertain = flag(request.args, "include_uncertain")
    after = optional_int("after")
    limit = optional_int("limit", minimum=1, maximum=200)
    preview = state.extension.retry_preview(
        campaign, include_uncertain=include_uncertain, after=after, limit=limit
    )
    return jsonify(preview.as_dict())


def _started(campaign: Any, attempt: Any) -> dict[str, Any]:
    return {
        "status": "started",
        "campaign_id": campaign.id,
        "attempt_id": attempt.id,
        "attempt_number": attempt.number,
        "delivery_url": _delivery_url(campaign),
    }


@bp.get("/<campaign_id>/delivery")
def delivery(campaign_id: str) -> ResponseReturnValue:
    """The campaign's delivery report as JSON (see :func:`web.report.delivery_report`)."""
    state = get_state()
    campaign = _campaign_or_404(state, campaign_id)
    require_permission(state, campaign, "view")
    return jsonify(delivery_report(state, campaign))


@bp.get("/<campaign_id>/failures")
def failures(campaign_id: str) -> ResponseReturnValue:
    """A keyset page of failed recipients: ``?after=<cursor>&limit=<1..200>``."""
    state = get_state()
    campaign = _campaign_or_404(state, campaign_id)
    require_permission(state, campaign, "view")
    after = optional_int("after")
    limit = optional_int("limit", minimum=1, maximum=200)
    page = failed_recipients_page(state, campaign, after=after, limit=limit)
    return jsonify(page.as_dict())
