"""Classify Mailgun failures into :class:`ProviderError` kinds. Pure functions, no I/O.

Classification decides what the engine may do next, so it errs on the safe side: anything that
might have reached Mailgun and been accepted is UNCERTAIN (never re-sent automatically), and only
failures that provably sent nothing (connect errors) or that Mailgun answered with "not now"
(429/420, 5xx other than gateway errors) are TRANSIENT.

HTTP status table (see :func:`classify_response`):

====================  ===========  ==============================================================
status                kind         why
====================  ===========  ==============================================================
429, 420              TRANSIENT    rate limited; ``resume_at`` from "try again after"/Retry-After
408                   TRANSIENT    Mailgun timed out reading the request: it was not processed
500, 503, other 5xx   TRANSIENT    Mailgun answered itself that it failed
502, 504              UNCERTAIN    a gateway gave up; Mailgun behind it may have accepted
400                   PERMANENT    the batch is malformed; ``blames_recipients`` when an address
                                   is named invalid ("'to' parameter is not a valid address")
400 "... is not       FATAL        the domain/account may not send (sandbox, free, unverified):
allowed to send"                   every batch would fail the same way
401                   FATAL        the API key was refused
403                   FATAL        account or domain not allowed to send this
404, 413, other 4xx   PERMANENT    wrong domain/region, too large, ...
3xx                   FATAL        redirect: MAILGUN_API_URL points somewhere wrong
====================  ===========  ==============================================================
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from http import HTTPStatus
from urllib.parse import quote

from flask_campaign_retry.providers.base import ProviderError
from flask_campaign_retry.providers.mailgun.resume import parse_resume_time
from flask_campaign_retry.statuses import FailureKind

REDACTED = "[REDACTED]"
MAX_MESSAGE_CHARS = 300
_BLAMES_RECIPIENTS_RE = re.compile(
    r"'?\b(to|cc|bcc)\b'?\s+parameter\s+is\s+not\s+a\s+valid\s+address", re.IGNORECASE
)
_DOMAIN_REFUSED_RE = re.compile(r"\bis not allowed to send\b", re.IGNORECASE)
_REGION_HINT = (
    "Check MAILGUN_DOMAIN, and that MAILGUN_API_URL is the domain's region "
    "(US https://api.mailgun.net, EU https://api.eu.mailgun.net)."
)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret in ``text`` with ``[REDACTED]``.

    Besides the plain value this also catches the forms a secret takes on the wire: the
    HTTP Basic credential ``base64("api:<key>")`` that requests builds from it, and its
    URL-encoded form. Empty secrets are ignored.
    """
    for secret in secrets:
        if not secret:
            continue
        for form in _secret_forms(secret):
            text = text.replace(form, REDACTED)
    return text


def _secret_forms(secret: str) -> Iterator[str]:
    yield secret
    quoted = quote(secret, safe="")
    if quoted != secret:
        yield quoted
    yield base64.b64encode(f"api:{secret}".encode()).decode("ascii")


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def mailgun_message(body_text: str) -> str:
    """Mailgun's human message from a response body: JSON ``message``, else the text itself."""
    try:
        data = json.loads(body_text)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return shorten(data["message"])
    return shorten(body_text) or "(empty body)"


def classify_response(
    status: int,
    body_text: str,
    headers: Mapping[str, str],
    now: datetime,
    *,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """Classify a non-2xx Mailgun answer (see the module table). ``secrets`` are redacted."""
    if 200 <= status <= 299:
        raise ValueError(f"HTTP {status} is a success; only failures are classified.")
    said = redact(mailgun_message(body_text), secrets)
    prefix = f"HTTP {status} from Mailgun"

    def error(
        kind: FailureKind,
        text: str,
        *,
        resume_at: datetime | None = None,
        blames_recipients: bool = False,
    ) -> ProviderError:
        return ProviderError(
            kind,
            shorten(text, 2 * MAX_MESSAGE_CHARS),
            code=status,
            resume_at=resume_at,
            blames_recipients=blames_recipients,
        )

    if status in (429, 420):
        resume_at = parse_resume_time(body_text, headers, now)
        return error(FailureKind.TRANSIENT, f"{prefix} (rate limited): {said}", resume_at=resume_at)
    if status in (HTTPStatus.BAD_GATEWAY, HTTPStatus.GATEWAY_TIMEOUT):
        return error(
            FailureKind.UNCERTAIN,
            f"{prefix}: a gateway gave up, Mailgun may have accepted the batch: {said}",
        )
    if 500 <= status <= 599 or status == HTTPStatus.REQUEST_TIMEOUT:
        return error(FailureKind.TRANSIENT, f"{prefix}: {said}")
    if status == HTTPStatus.UNAUTHORIZED:
        return error(
            FailureKind.FATAL,
            f"{prefix}: the API key was refused ({said}). Check MAILGUN_API_KEY, and that "
            "MAILGUN_API_URL is the domain's region (US https://api.mailgun.net, "
            "EU https://api.eu.mailgun.net).",
        )
    if status == HTTPStatus.FORBIDDEN:
        return error(FailureKind.FATAL, f"{prefix}: account or domain not allowed: {said}")
    if status == HTTPStatus.BAD_REQUEST:
        if _DOMAIN_REFUSED_RE.search(said):
            return error(FailureKind.FATAL, f"{prefix}: domain not allowed to send: {said}")
        blames = bool(_BLAMES_RECIPIENTS_RE.search(said))
        return error(FailureKind.PERMANENT, f"{prefix}: {said}", blames_recipients=blames)
    if status == HTTPStatus.NOT_FOUND:
        return error(FailureKind.PERMANENT, f"{prefix}: {said}. {_REGION_HINT}")
    if 400 <= status <= 499:
        return error(FailureKind.PERMANENT, f"{prefix}: {said}")
    if 300 <= status <= 399:
        return error(
            FailureKind.FATAL,
            f"{prefix}: unexpected redirect; check MAILGUN_API_URL ({said})",
        )
    return error(FailureKind.UNCERTAIN, f"{prefix}: unexpected status: {said}")


def connect_error(detail: str) -> ProviderError:
    """Nothing reached Mailgun (refused, DNS, connect timeout, TLS handshake): transient."""
    return ProviderError(
        FailureKind.TRANSIENT, f"Could not connect to Mailgun, nothing was sent ({detail})"
    )


def read_timeout_error(detail: str) -> ProviderError:
    """The batch was sent but no answer came in time: Mailgun may have accepted it."""
    return ProviderError(
        FailureKind.UNCERTAIN,
        f"No answer from Mailgun within the read timeout after the batch was sent; "
        f"it may have been accepted ({detail})",
    )


def dropped_connection_error(detail: str) -> ProviderError:
    """The connection broke while the batch was being sent or answered: may be accepted."""
    return ProviderError(
        FailureKind.UNCERTAIN,
        f"The connection to Mailgun broke after the batch was sent; "
        f"it may have been accepted ({detail})",
    )
