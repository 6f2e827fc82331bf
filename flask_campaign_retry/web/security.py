"""Who may act on a campaign, that a request comes from the host's own pages, and where to
send a browser back to.

Authorization
    Every route asks the host's ``@retry.authorize`` hook ``(campaign, action) -> bool`` with
    action "view", "send", "retry" or "clone". Without a hook every route answers 403: an
    extension that resends email must not be open by default (``init_app`` logs a warning).

CSRF (every state-changing route; the decision, in order)
    1. ``WTF_CSRF_ENABLED = False`` (Flask-WTF's own switch, usually set in tests) turns the
       check off, exactly as it does for the host's own forms.
    2. If the host registered Flask-WTF's ``CSRFProtect`` (``app.extensions["csrf"]``), its
       ``protect()`` runs: the host's token, field name, headers, SSL referrer check and
       ``CSRFError`` handler apply unchanged, and with Flask-WTF >= 1.3 so do exemptions the
       host declared with ``csrf.exempt`` (for instance for a token-authenticated API client).
    3. Otherwise a token is still required, checked with ``flask_wtf.csrf.validate_csrf``
       against the session (form field ``WTF_CSRF_FIELD_NAME``, default ``csrf_token``, or the
       ``X-CSRFToken`` / ``X-CSRF-Token`` header). The panel puts the token in its forms, so
       it works in a host that never set up Flask-WTF itself.
    4. flask-wtf is a dependency, but if an environment lacks it there is nothing to check a
       token with, and a state-changing route without CSRF lets any web page make a signed-in
       user's browser start sends. Those routes then answer 500 with a message saying to
       install flask-wtf, and registration logs the same as a warning. Refusing is the only
       safe default; it is a server misconfiguration, not the client's fault.

    A missing or invalid token is Flask-WTF's ``CSRFError`` (a 400 with the reason).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import current_app, request
from werkzeug.exceptions import InternalServerError

from flask_campaign_retry.state import AppState
from flask_campaign_retry.web.http_io import ActionForbidden

log = logging.getLogger("flask_campaign_retry")

ACTIONS = frozenset({"view", "send", "retry", "clone"})
DEFAULT_CSRF_HEADERS = ("X-CSRFToken", "X-CSRF-Token")
MAX_REDIRECT_LENGTH = 2048

INSTALL_FLASK_WTF = (
    "CSRF protection is unavailable because flask-wtf is not installed (it is a dependency of "
    "flask-campaign-retry): `pip install flask-wtf`. Until then flask-campaign-retry refuses "
    "every state-changing request."
)


def flask_wtf_available() -> bool:
    """True when flask-wtf can be imported (it is the optional ``csrf`` extra)."""
    try:
        import flask_wtf.csrf  # noqa: F401
    except ImportError:
        return False
    return True


def is_allowed(state: AppState, campaign: Any, action: str) -> bool:
    """The host's verdict on ``action`` for ``campaign``; False when no hook is registered."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}; expected one of {sorted(ACTIONS)}.")
    hook = state.extension.hooks.authorize
    return hook is not None and bool(hook(campaign, action))


def require_permission(state: AppState, campaign: Any, action: str) -> None:
    """Raise 403 unless the ``authorize`` hook allows ``action`` on ``campaign``."""
    if state.extension.hooks.authorize is None:
        raise ActionForbidden(
            "No @retry.authorize hook is registered, so flask-campaign-retry refuses every "
            "request. Register one: @retry.authorize def allowed(campaign, action): ..."
        )
    if not is_allowed(state, campaign, action):
        raise ActionForbidden(f"You are not allowed to {action} this campaign.")


def csrf_field_name() -> str:
    """The form field that carries the token (Flask-WTF's ``WTF_CSRF_FIELD_NAME``)."""
    return str(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))


def csrf_token() -> str | None:
    """A token for the panel's forms, or None when flask-wtf is missing or there is no secret."""
    if not flask_wtf_available() or not _has_secret():
        return None
    from flask_wtf.csrf import generate_csrf

    return str(generate_csrf())


def _has_secret() -> bool:
    return bool(current_app.config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key)


def require_csrf() -> None:
    """Check the request's CSRF token as described in the module docstring."""
    config = current_app.config
    if config.get("WTF_CSRF_ENABLED", True) is False:
        return
    if not flask_wtf_available():
        raise InternalServerError(INSTALL_FLASK_WTF)
    if not _has_secret():
        raise InternalServerError(
            "CSRF protection needs a secret: set SECRET_KEY (or WTF_CSRF_SECRET_KEY)."
        )
    host_csrf = current_app.extensions.get("csrf")
    if host_csrf is not None:
        _host_protect(host_csrf)
        return
    # flask_wtf.csrf re-exports the wtforms ValidationError that validate_csrf raises.
    from flask_wtf.csrf import CSRFError, ValidationError, validate_csrf

    try:
        validate_csrf(_submitted_token())
    except ValidationError as exc:
        raise CSRFError(str(exc.args[0]) if exc.args else "The CSRF token is invalid.") from None


def _host_protect(host_csrf: Any) -> None:
    protect = host_csrf.protect
    if "apply_exemptions" in inspect.signature(protect).parameters:
        protect(apply_exemptions=True)
    else:
        protect()


def _submitted_token() -> str | None:
    token = request.form.get(csrf_field_name())
    if token:
        return str(token)
    headers = current_app.config.get("WTF_CSRF_HEADERS", DEFAULT_CSRF_HEADERS)
    for header in headers:
        value = request.headers.get(header)
        if value:
            return value
    return None


def is_safe_local_url(url: str | None) -> bool:
    """True for a path on this site ("/campaigns/3?tab=x"), never for another host.

    Refuses schemes, hosts, scheme-relative ``//evil`` and ``/\\evil`` (which browsers read as
    ``//evil``), and control characters.
    """
    if not url or len(url) > MAX_REDIRECT_LENGTH or not url.startswith("/"):
        return False
    if url.startswith(("//", "/\\")) or "\\" in url:
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return False
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc


def redirect_target(default: str) -> str:
    """Where a form post goes back to: a safe ``next`` field, else a same-host Referer, else
    ``default``."""
    candidate = request.form.get("next")
    if is_safe_local_url(candidate):
        return str(candidate)
    referrer = request.referrer
    if referrer and len(referrer) <= MAX_REDIRECT_LENGTH:
        try:
            parts = urlsplit(referrer)
        except ValueError:
            return default
        if parts.scheme in ("http", "https") and parts.netloc == request.host:
            local = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            if is_safe_local_url(local):
                return local
    return default
