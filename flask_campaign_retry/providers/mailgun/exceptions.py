"""Classify what the Mailgun SDK raises (timeouts, connection errors, anything unexpected) into a
:class:`ProviderError`: before the request was sent it is TRANSIENT, after it UNCERTAIN.

The only module besides :mod:`.provider` that imports the SDK, so the rest of the Mailgun
support (form, answers, events, webhook signature) works without it.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterable

from mailgun.handlers.error_handler import MailgunTimeoutError
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from flask_campaign_retry.providers.base import ProviderError
from flask_campaign_retry.providers.mailgun.errors import (
    connect_error,
    dropped_connection_error,
    read_timeout_error,
    redact,
    shorten,
)
from flask_campaign_retry.statuses import FailureKind

_MAX_DETAIL_CHARS = 200


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps: causes, contexts and urllib3 retry reasons."""
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        linked = [current.__cause__, current.__context__]
        if isinstance(current, MaxRetryError):
            linked.append(current.reason)
        linked.extend(arg for arg in current.args if isinstance(arg, BaseException))
        stack.extend(item for item in reversed(linked) if item is not None)
    return seen


def _detail(chain: list[BaseException], secrets: Iterable[str | None]) -> str:
    """The most telling error of the chain: urllib3's (it names host, port and timeout),
    else the innermost OS/HTTP-level one, else the outermost."""
    urllib3_errors = [
        e for e in chain if isinstance(e, HTTPError) and not isinstance(e, MaxRetryError)
    ]
    low_level = [e for e in chain if isinstance(e, (OSError, http.client.HTTPException))]
    best = (urllib3_errors or low_level[-1:] or chain)[0]
    return shorten(redact(f"{type(best).__name__}: {best}", secrets), _MAX_DETAIL_CHARS)


def classify_exception(exc: BaseException, *, secrets: Iterable[str | None] = ()) -> ProviderError:
    """Classify an exception raised while sending one batch.

    The SDK raises ``MailgunTimeoutError`` for timeouts and ``ApiError`` for connection
    failures, chaining the requests exception (which wraps urllib3's) as ``__cause__``:

    - connect timeout, connection refused, DNS failure, TLS/proxy handshake: nothing was sent
      → TRANSIENT (urllib3's ``NewConnectionError``/``NameResolutionError`` are
      ``ConnectTimeoutError`` subclasses);
    - read timeout, connection reset/closed, incomplete answer (``ReadTimeoutError``,
      ``ProtocolError``, ``RemoteDisconnected``, ``IncompleteRead``) → UNCERTAIN;
    - ``ValueError``/``TypeError`` with no network error inside (the SDK refused to build the
      request, e.g. a header with a line break) → PERMANENT: this batch can never be sent;
    - anything else → UNCERTAIN, because it cannot be shown that nothing was sent.

    Evidence that the request went out wins over evidence of a connect failure.
    """
    if isinstance(exc, ProviderError):
        return exc
    chain = _chain(exc)
    detail = _detail(chain, secrets)
    after_send = any(
        isinstance(e, (ReadTimeoutError, ProtocolError, http.client.HTTPException))
        or (isinstance(e, ConnectionError) and not isinstance(e, ConnectionRefusedError))
        for e in chain
    )
    before_send = any(
        isinstance(e, (ConnectTimeoutError, ConnectionRefusedError, socket.gaierror))
        or (isinstance(e, (SSLError, ProxyError)) and not after_send)
        for e in chain
    )
    if before_send and not after_send:
        return connect_error(detail)
    if any(isinstance(e, (ReadTimeoutError, TimeoutError, MailgunTimeoutError)) for e in chain):
        return read_timeout_error(detail)
    if after_send:
        return dropped_connection_error(detail)
    if any(isinstance(e, (ValueError, TypeError)) for e in chain) and not any(
        isinstance(e, OSError) for e in chain
    ):
        return ProviderError(
            FailureKind.PERMANENT, f"The Mailgun request could not be built ({detail})"
        )
    return ProviderError(
        FailureKind.UNCERTAIN, f"Unexpected error while sending to Mailgun ({detail})"
    )
