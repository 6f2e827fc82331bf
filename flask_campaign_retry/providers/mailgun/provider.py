"""The Mailgun provider: one batch, one HTTP request, through the official ``mailgun`` SDK.

The SDK retries POSTs by itself by default (a 429 became four HTTP calls); here its retry
policy is off, so exactly one request is made per :meth:`MailgunProvider.send_batch` and every
retry decision belongs to the engine. Failures are classified by
:mod:`flask_campaign_retry.providers.mailgun.errors`.

Each batch always carries ``recipient-variables`` (without them every recipient would see every
address in To) and ``v:`` variables naming the campaign, attempt, batch and recipient, so that
Mailgun's events map back to our rows.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NoReturn, Protocol, Self

from mailgun.client import Client
from mailgun.config import RetryPolicy

from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.base import (
    Accepted,
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    RecipientLookup,
)
from flask_campaign_retry.providers.mailgun.errors import classify_response
from flask_campaign_retry.providers.mailgun.events import events_filters, fold_events, walk_events
from flask_campaign_retry.providers.mailgun.exceptions import classify_exception
from flask_campaign_retry.providers.mailgun.form import build_form, check_message
from flask_campaign_retry.providers.mailgun.settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    EU_API_URL,
    US_API_URL,
    normalize_api_url,
    required,
    timeout_setting,
)

__all__ = ["EU_API_URL", "US_API_URL", "MailgunProvider", "normalize_api_url"]

log = logging.getLogger(__name__)


class _Response(Protocol):
    """The part of ``requests.Response`` (what the SDK returns) that is used here."""

    status_code: int
    text: str
    headers: Mapping[str, str]


class _Secret:
    """Holds the API key so that no repr, str or traceback of the provider shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class MailgunProvider:
    """Sends batches through Mailgun's sending API (US or EU region).

    The SDK client (and its connection pool) lives as long as the provider; :meth:`close`
    releases it. Calls are serialized by a lock, which is all one RQ worker needs.
    """

    name = "mailgun"

    def __init__(
        self,
        api_key: str,
        domain: str,
        *,
        api_url: str = US_API_URL,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        if not api_key or not domain:
            raise ConfigurationError("MailgunProvider needs an API key and a sending domain.")
        self._key = _Secret(api_key)
        self.domain = domain
        self.api_url = normalize_api_url(api_url)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._lock = threading.Lock()
        self._client: Client | None = None
        #: The process that sent through ``_client`` (None: built, never used).
        self._client_used_by: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MailgunProvider:
        """Build from app config: ``MAILGUN_API_KEY``, ``MAILGUN_DOMAIN`` (both required),
        ``MAILGUN_API_URL``, ``CAMPAIGN_RETRY_CONNECT_TIMEOUT``, ``CAMPAIGN_RETRY_READ_TIMEOUT``.
        """
        api_key = required(
            config,
            "MAILGUN_API_KEY",
            "set it to your Mailgun private API key (Mailgun dashboard > API Security).",
        )
        domain = required(
            config,
            "MAILGUN_DOMAIN",
            "set it to your sending domain, e.g. 'mg.example.com' (Mailgun dashboard > Domains).",
        )
        api_url = config.get("MAILGUN_API_URL") or US_API_URL
        if not isinstance(api_url, str):
            raise ConfigurationError(f"MAILGUN_API_URL must be a string, got {api_url!r}.")
        return cls(
            api_key,
            domain,
            api_url=api_url,
            connect_timeout=timeout_setting(
                config, "CAMPAIGN_RETRY_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT
            ),
            read_timeout=timeout_setting(
                config, "CAMPAIGN_RETRY_READ_TIMEOUT", DEFAULT_READ_TIMEOUT
            ),
        )

    def __repr__(self) -> str:
        return f"MailgunProvider(domain={self.domain!r}, api_url={self.api_url!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "MailgunProvider holds the API key and must not be pickled (RQ jobs carry ids only)."
        )

    def warm(self) -> None:
        """Build the SDK client now (the CA bundle is loaded into its TLS context: about 70 ms),
        opening no connection. A forking worker calls this before it forks, so work horses
        inherit the client instead of each building one."""
        with self._lock:
            self._client_for(os.getpid(), use=False)

    def _sdk_client(self) -> Client:
        return self._client_for(os.getpid(), use=True)

    def _client_for(self, pid: int, *, use: bool) -> Client:
        """The SDK client for this process. A client already used by another process (the
        parent of a fork) may hold its open connections: it is never shared, a new one is
        built. A client nobody used holds no connection and is safe to inherit."""
        if self._client is None or self._client_used_by not in (None, pid):
            self._client = Client(
                auth=("api", self._key.reveal()),
                api_url=self.api_url,
                timeout=(self.connect_timeout, self.read_timeout),
                retry_policy=RetryPolicy(max_retries=0),  # one request per batch: we retry
            )
            self._client_used_by = None
        if use:
            self._client_used_by = pid
        return self._client

    def validate(self, message: OutgoingMessage) -> None:
        """Refuse (``ValueError`` naming the field) a message Mailgun cannot carry."""
        check_message(message)

    def send_batch(
        self,
        message: OutgoingMessage,
        recipients: Sequence[BatchRecipient],
        ref: BatchRef,
    ) -> Accepted:
        """Submit one batch in exactly one HTTP request.

        Returns :class:`Accepted` (Mailgun's message id without angle brackets) or raises a
        classified :class:`ProviderError` whose message never contains the API key. The engine
        logs each call (batch, status, duration, error kind); the provider adds nothing to it.
        """
        form = build_form(message, recipients, ref)
        try:
            with self._lock:
                response: _Response = self._sdk_client().messages.create(
                    domain=self.domain, data=form
                )
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none is lost
            error = classify_exception(exc, secrets=[self._key.reveal()])
            raise error from None
        status = int(response.status_code)
        if 200 <= status <= 299:
            return Accepted(message_id=_message_id(response), http_status=status)
        error = classify_response(
            status,
            response.text,
            response.headers,
            datetime.now(UTC),
            secrets=[self._key.reveal()],
        )
        raise error

    def lookup_batch(
        self,
        ref: BatchRef,
        recipients: Sequence[BatchRecipient],
        since: datetime,
    ) -> dict[int, RecipientLookup]:
        """What Mailgun's Events API says about each recipient of one batch (reconciliation).

        Asks for the accepted/delivered/failed events carrying this batch's ``v:`` variables
        since ``since``, follows the pages until one is empty, and folds them per recipient
        (:func:`~.mailgun_events.fold_events`). Raises :class:`ProviderError` when any page
        fails: an incomplete lookup proves nothing. Sends nothing.
        """
        filters = events_filters(ref, since)

        def first_page() -> Any:
            with self._lock:
                return self._sdk_client().events.get(domain=self.domain, filters=filters)

        events = walk_events(
            first_page,
            api_url=self.api_url,
            domain=self.domain,
            auth=("api", self._key.reveal()),
            timeout=(self.connect_timeout, self.read_timeout),
        )
        # reconcile.reconcile_batches logs what the lookups found, per sweep.
        return fold_events(events, ref, recipients)

    def close(self) -> None:
        """Close the SDK client's connection pool (a later send opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
            self._client_used_by = None
        if client is not None:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _message_id(response: _Response) -> str | None:
    """Mailgun's ``id`` without the angle brackets (the form events use)."""
    try:
        data = json.loads(response.text)
    except ValueError:
        data = None
    message_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(message_id, str):
        log.warning("Mailgun accepted a batch but its answer had no message id")
        return None
    return message_id.strip().removeprefix("<").removesuffix(">")
