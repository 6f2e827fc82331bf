"""Reading Mailgun events: what one event says, which of our recipients it is about, and the
Events API lookup of one batch (query, paging, folding the events per recipient).

Shared by the Mailgun provider's reconciliation lookup and the webhook route, so that an event
means the same thing whichever way it arrives.

Paging: Mailgun's ``paging.next`` is a full URL whose page token is a *path* segment
(``/v3/<domain>/events/<token>``). The SDK's own ``Endpoint.stream()`` keeps only the query
string of that URL and would ask for the first page again, and its attribute routing lowercases
path keys, so the first page goes through ``client.events.get`` and the following pages are
fetched from ``next`` itself with ``requests`` (what the SDK uses underneath), after checking
that the link stays on our API host and domain, so the key is never sent anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

import requests

from flask_campaign_retry.providers.base import (
    BatchRecipient,
    BatchRef,
    LookupOutcome,
    ProviderError,
    RecipientLookup,
)
from flask_campaign_retry.providers.mailgun.errors import classify_response, mailgun_message, redact
from flask_campaign_retry.statuses import FailureKind

CAMPAIGN_VAR: Final = "campaign_retry_campaign"
ATTEMPT_VAR: Final = "campaign_retry_attempt"
BATCH_VAR: Final = "campaign_retry_batch"
RECIPIENT_VAR: Final = "campaign_retry_recipient"
#: The event types that tell us something about a send (others: opened, clicked, ...).
LOOKUP_EVENTS: Final = ("accepted", "delivered", "failed")
PAGE_LIMIT: Final = 300  # Mailgun's maximum
#: A lookup follows at most this many pages (300 events each) before giving up as unknown.
MAX_PAGES: Final = 200
_MAX_DETAIL = 300

#: Strength of each outcome: the strongest evidence found for a recipient wins.
STRENGTH: Final[Mapping[LookupOutcome, int]] = {
    LookupOutcome.NOT_FOUND: 0,
    LookupOutcome.ACCEPTED: 1,
    LookupOutcome.FAILED_TEMPORARY: 2,
    LookupOutcome.FAILED_PERMANENT: 3,
    LookupOutcome.DELIVERED: 4,
}


def event_outcome(event: Mapping[str, Any]) -> LookupOutcome | None:
    """The outcome one Mailgun event stands for, or None for events that do not concern
    delivery (opened, clicked, rejected ...). A temporary failure with reason ``old`` is
    Mailgun giving up after hours of retries: final, so it counts as a permanent failure."""
    kind = event.get("event")
    if kind == "accepted":
        return LookupOutcome.ACCEPTED
    if kind == "delivered":
        return LookupOutcome.DELIVERED
    if kind == "failed":
        if event.get("severity") == "temporary" and event.get("reason") != "old":
            return LookupOutcome.FAILED_TEMPORARY
        return LookupOutcome.FAILED_PERMANENT
    return None


def failure_details(event: Mapping[str, Any]) -> tuple[int | None, str]:
    """(SMTP/Mailgun code, short text) of a failed event, e.g. (550, "bounce: 5.1.1 ...")."""
    status = event.get("delivery-status")
    status = status if isinstance(status, Mapping) else {}
    raw_code = status.get("code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    if isinstance(raw_code, str) and raw_code.isdigit() and len(raw_code) <= 6:
        code = int(raw_code)
    said = next(
        (
            str(text).strip()
            for text in (status.get("description"), status.get("message"))
            if isinstance(text, str) and text.strip()
        ),
        "",
    )
    reason = event.get("reason")
    reason_text = reason if isinstance(reason, str) and reason else "unknown reason"
    if reason == "old" and not said:
        said = "Mailgun stopped retrying after several hours"
    text = f"{reason_text}: {said}" if said else reason_text
    text = " ".join(text.split())  # no line breaks from remote servers
    return code, text[:_MAX_DETAIL]


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """The event's ``timestamp`` (epoch seconds, fractional) as an aware UTC datetime."""
    value = event.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def event_message_id(event: Mapping[str, Any]) -> str | None:
    """``message.headers.message-id`` without angle brackets."""
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, Mapping) else None
    value = headers.get("message-id") if isinstance(headers, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().removeprefix("<").removesuffix(">")[:255]


def variable(variables: Mapping[str, Any], name: str) -> str | None:
    """One of our ``v:`` variables as text (Mailgun may hand a number back as a number)."""
    value = variables.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= 255 else None


def id_variable(variables: Mapping[str, Any], name: str) -> int | None:
    """One of our integer id variables, or None when absent or not a positive integer."""
    text = variable(variables, name)
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if 0 < number < 2**63 else None


def events_filters(ref: BatchRef, since: datetime) -> dict[str, str]:
    """Events API query for one batch: our ``v:`` variables, since ``since``, oldest first."""
    aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    return {
        "event": " OR ".join(LOOKUP_EVENTS),
        "user-variables": json.dumps(
            {CAMPAIGN_VAR: str(ref.campaign_id), BATCH_VAR: str(ref.batch_id)},
            separators=(",", ":"),
        ),
        "begin": format_datetime(aware.astimezone(UTC), usegmt=True),
        "ascending": "yes",
        "limit": str(PAGE_LIMIT),
    }


def fold_events(
    events: Iterable[Mapping[str, Any]], ref: BatchRef, recipients: Sequence[BatchRecipient]
) -> dict[int, RecipientLookup]:
    """The strongest evidence per recipient id; NOT_FOUND for those no event mentions.

    An event counts only if its variables name this campaign and batch, a recipient of
    ``recipients``, and its ``recipient`` address is that recipient's (case-insensitive). Among
    events of equal strength the earliest wins, so the answer does not depend on page order.
    """
    emails = {recipient.id: recipient.email.lower() for recipient in recipients}
    found: dict[int, RecipientLookup] = {
        rid: RecipientLookup(LookupOutcome.NOT_FOUND) for rid in emails
    }
    for event in events:
        variables = event.get("user-variables")
        outcome = event_outcome(event)
        if outcome is None or not isinstance(variables, Mapping):
            continue
        rid = id_variable(variables, RECIPIENT_VAR)
        address = event.get("recipient")
        if (
            rid not in emails
            or variable(variables, BATCH_VAR) != str(ref.batch_id)
            or variable(variables, CAMPAIGN_VAR) != str(ref.campaign_id)
            or not isinstance(address, str)
            or address.strip().lower() != emails[rid]
        ):
            continue
        candidate = _lookup_of(event, outcome)
        current = found[rid]
        if _stronger(candidate, current):
            found[rid] = candidate
    return found


def _lookup_of(event: Mapping[str, Any], outcome: LookupOutcome) -> RecipientLookup:
    code, detail = (None, None)
    if outcome in (LookupOutcome.FAILED_PERMANENT, LookupOutcome.FAILED_TEMPORARY):
        code, detail = failure_details(event)
    return RecipientLookup(outcome, event_message_id(event), event_time(event), code, detail)


def _stronger(candidate: RecipientLookup, current: RecipientLookup) -> bool:
    new, old = STRENGTH[candidate.outcome], STRENGTH[current.outcome]
    if new != old:
        return new > old
    far_future = datetime.max.replace(tzinfo=UTC)
    return (candidate.at or far_future) < (current.at or far_future)


# -- the Events API ---------------------------------------------------------------------------

FirstPage = Callable[[], Any]
"""Fetches the first page (the SDK call); returns a ``requests.Response``-like object."""


def lookup_error(
    status: int | None, text: str, secrets: Sequence[str], now: datetime
) -> ProviderError:
    """A failed lookup, classified like a send failure (rate limits keep their resume time)
    but worded as a lookup: nothing was sent, the outcome is simply unknown."""
    if status is None:
        detail = redact(text, secrets)[:_MAX_DETAIL]
        return ProviderError(FailureKind.TRANSIENT, f"Mailgun Events API lookup failed: {detail}")
    classified = classify_response(status, text, {}, now, secrets=secrets)
    said = redact(mailgun_message(text), secrets)[:_MAX_DETAIL]
    kind = classified.kind if classified.kind is FailureKind.FATAL else FailureKind.TRANSIENT
    return ProviderError(
        kind,
        f"Mailgun Events API lookup failed: HTTP {status}: {said}",
        code=status,
        resume_at=classified.resume_at,
    )


def _page(response: Any, secrets: Sequence[str]) -> tuple[list[Mapping[str, Any]], str | None]:
    status = int(response.status_code)
    if not 200 <= status <= 299:
        raise lookup_error(status, str(response.text), secrets, datetime.now(UTC))
    try:
        data = json.loads(response.text)
    except ValueError:
        data = None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise lookup_error(None, "the answer has no 'items' list", secrets, datetime.now(UTC))
    paging = data.get("paging") if isinstance(data, dict) else None
    next_url = paging.get("next") if isinstance(paging, dict) else None
    events = [item for item in items if isinstance(item, Mapping)]
    return events, next_url if isinstance(next_url, str) else None


def _check_next(url: str, api_url: str, domain: str) -> None:
    """Refuse a paging link that would send our API key to another host or path."""
    link, base = urlsplit(url), urlsplit(api_url)
    prefix = f"/v3/{quote(domain, safe='.-_')}/events"
    if (link.scheme, link.netloc) != (base.scheme, base.netloc) or not (
        link.path == prefix or link.path.startswith(prefix + "/")
    ):
        raise ProviderError(
            FailureKind.PERMANENT,
            f"Mailgun Events API paging link does not point at {api_url}{prefix}; not followed.",
        )


def walk_events(
    first_page: FirstPage,
    *,
    api_url: str,
    domain: str,
    auth: tuple[str, str],
    timeout: tuple[float, float],
) -> Iterator[Mapping[str, Any]]:
    """Every event of a query: the first page, then ``paging.next`` until a page is empty.

    Raises :class:`ProviderError` when any page fails (the lookup is then incomplete, so
    nothing may be concluded from it) or after :data:`MAX_PAGES` pages.
    """
    secrets = [auth[1]]
    try:
        events, next_url = _page(first_page(), secrets)
        pages = 1
        while events:
            yield from events
            if next_url is None:
                return
            if pages >= MAX_PAGES:
                raise ProviderError(
                    FailureKind.TRANSIENT,
                    f"Mailgun Events API lookup stopped after {MAX_PAGES} pages.",
                )
            _check_next(next_url, api_url, domain)
            response = requests.get(next_url, auth=auth, timeout=timeout, allow_redirects=False)
            events, next_url = _page(response, secrets)
            pages += 1
    except ProviderError:
        raise
    except Exception as exc:  # noqa: BLE001 - any network failure makes the lookup unknown
        raise lookup_error(
            None, f"{type(exc).__name__}: {exc}", secrets, datetime.now(UTC)
        ) from None
