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
=======  =====================  ===========================================================

Each state-changing request goes: CSRF (400) -> campaign (404) -> ``authorize`` (403) ->
fields (400) -> the same :class:`CampaignRetry` method the CLI calls (409 when refused).
JSON clients get JSON; an HTML form post is redirected back (``next`` field, a same-host
Referer, or the site root) with a flash message that states the outcome or the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Flask, flash, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from flask_campaign_retry.errors import QueueUnavailable, TransitionRefused
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.web.http_io import (
    CampaignNotFound,
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
from flask_campaign_retry.web.panel import campaign_retry_panel
from flask_campaign_retry.web.report import delivery_report, failed_recipients_page
from flask_campaign_retry.web.security import redirect_target, require_csrf, require_permission

bp = Blueprint("campaign_retry", __name__, template_folder="templates")
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
        flash(refusal.reason, "error")
        return redirect(back, 303)
    except QueueUnavailable:
        # Redis is down: nothing changed; JSON clients get 503, browsers the message.
        if json_client:
            raise QueueDown() from None
        flash(QueueUnavailable.reason, "error")
        return redirect(back, 303)
    if json_client:
        response = jsonify(body)
        response.status_code = status
        if location is not None:
            response.headers["Location"] = location
        return response
    flash(message, "success")
    # A new campaign (clone) opens on the host's own page for it, when the host says where.
    return redirect(body.get("page_url") or back, 303)


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
            "total_recipients": copy.total_recipients,
            "delivery_url": location,
        }
        page_hook = get_state().extension.hooks.campaign_url
        if page_hook is not None:
            body["page_url"] = page_hook(copy)
        message = f"Cloned into a new draft (#{copy.id})" + (
            f" for the {copy.total_recipients} recipients who did not get it."
            if only_unsent
            else "."
        )
        return body, 201, message, location

    return _state_changing(campaign_id, "clone", perform)


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
    """The campaign's delivery report as JSON (see :func:`report.delivery_report`)."""
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
