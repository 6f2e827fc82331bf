"""Reading requests and writing answers for the blueprint: JSON or HTML, fields, errors.

Every error that crosses HTTP is a werkzeug :class:`HTTPException` with a description a person
can act on. JSON clients (a JSON body, or an ``Accept`` header that prefers JSON to HTML, or a
JSON-only route) get it as ``{"error", "code", "reason", "status"}``; browsers get werkzeug's
page (or the host's own error handler for that exception).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import (
    BadRequest,
    Conflict,
    Forbidden,
    HTTPException,
    NotFound,
    ServiceUnavailable,
)

from flask_campaign_retry.errors import QueueUnavailable, TransitionRefused

#: Largest request body the routes read; their own fields take a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
MAX_FORM_PARTS = 50
#: Endpoints that always answer JSON, whatever the client accepts.
JSON_ONLY_ENDPOINTS = frozenset(
    {"campaign_retry.delivery", "campaign_retry.failures", "campaign_retry.retry_preview"}
)

_TRUE = frozenset({"1", "true", "on", "yes", "y"})
_FALSE = frozenset({"", "0", "false", "off", "no", "n"})


class CampaignNotFound(NotFound):
    """No campaign has this id (or the id cannot be one)."""

    error_code = "unknown_campaign"


class ActionForbidden(Forbidden):
    """The host's ``authorize`` hook refused, or no hook is registered."""

    error_code = "forbidden"


class InvalidField(BadRequest):
    """A request field has a value the route cannot use."""

    error_code = "invalid_field"


class Refused(Conflict):
    """A :class:`TransitionRefused` on its way to a JSON client: 409 with code and reason."""

    def __init__(self, refusal: TransitionRefused) -> None:
        super().__init__(description=refusal.reason)
        self.error_code = refusal.code


class QueueDown(ServiceUnavailable):
    """A :class:`QueueUnavailable` on its way to a JSON client: 503, nothing was changed."""

    error_code = QueueUnavailable.code

    def __init__(self) -> None:
        super().__init__(description=QueueUnavailable.reason)

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("Retry-After", "5")]


def limit_request_body() -> None:
    """Cap what the routes parse (never above the host's own ``MAX_CONTENT_LENGTH``)."""
    host_limit = current_app.config.get("MAX_CONTENT_LENGTH")
    limit = MAX_BODY_BYTES if host_limit is None else min(int(host_limit), MAX_BODY_BYTES)
    request.max_content_length = limit
    request.max_form_memory_size = limit
    request.max_form_parts = MAX_FORM_PARTS


def wants_json() -> bool:
    """True for JSON clients: a JSON body, an Accept preferring JSON, or a JSON-only route."""
    if request.endpoint in JSON_ONLY_ENDPOINTS or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _is_csrf_error(error: HTTPException) -> bool:
    try:
        from flask_wtf.csrf import CSRFError
    except ImportError:
        return False
    return isinstance(error, CSRFError)


def error_body(error: HTTPException) -> dict[str, Any]:
    """The JSON shape of an error: stable ``code``, human ``reason``, HTTP ``status``."""
    code = getattr(error, "error_code", None)
    if code is None:
        code = "csrf_failed" if _is_csrf_error(error) else _snake(error.name)
    return {
        "error": _snake(error.name),
        "code": code,
        "reason": error.description,
        "status": error.code or 500,
    }


def _host_response(error: HTTPException) -> ResponseReturnValue | None:
    """What the app-level handler Flask would have picked for ``error`` had the blueprint none
    (code-specific first, then by class) answers, so browsers still see the host's own pages;
    None when the host has no handler for it."""
    spec = current_app.error_handler_spec.get(None, {})
    for key in (error.code, None):
        handlers = spec.get(key, {})
        for cls in type(error).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                response: ResponseReturnValue = current_app.ensure_sync(handler)(error)
                return response
    return None


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    """Blueprint error handler: JSON for JSON clients; for browsers, the host's handler for
    that error if it has one (e.g. its ``CSRFError`` page), else the exception itself."""
    if not wants_json():
        response = _host_response(error)
        return response if response is not None else error
    response = jsonify(error_body(error))
    response.status_code = error.code or 500
    if isinstance(error, QueueDown):
        response.headers["Retry-After"] = "5"
    return response


def request_fields() -> Mapping[str, Any]:
    """The request's fields: the JSON object of a JSON body, otherwise the form.

    A JSON body that is not an object, or is not valid JSON, is a 400 (never a 500, even when
    it is nested too deeply for the parser).
    """
    if not request.is_json:
        return request.form
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidField("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidField('The JSON body must be an object, e.g. {"include_uncertain": true}.')
    return data


def flag(fields: Mapping[str, Any], name: str) -> bool:
    """A boolean field: JSON true/false, or a form value like "1"/"on"/"true"/"0"/"off".

    Absent means False. Anything else is a 400 that names the field, so a typo such as
    ``include_uncertain=maybe`` never silently means "no".
    """
    value = fields.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and not request.is_json:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidField(f"{name} must be true or false, got {_preview(value)}.")


def _preview(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def optional_int(name: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int | None:
    """An integer query-string argument, or None when absent; 400 when malformed."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"[0-9]{1,19}", raw) or not minimum <= int(raw) <= maximum:
        raise InvalidField(f"{name} must be an integer from {minimum} to {maximum}.")
    return int(raw)
