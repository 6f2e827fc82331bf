"""The provider interface: send one batch, get accepted, a classified error or each recipient's
outcome (:class:`RecipientResults`); optionally, look a batch up in the provider's event log
(:class:`ReconcilingProvider`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from flask_campaign_retry.statuses import FailureKind


@dataclass(frozen=True)
class OutgoingMessage:
    """What the host's ``message_builder`` returns: the content shared by every recipient.

    ``%recipient.<name>%`` placeholders in subject/html/text are filled per recipient by
    providers that support recipient variables (Mailgun does).
    """

    subject: str
    from_address: str
    html: str | None = None
    text: str | None = None
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not self.subject:
            raise ValueError("OutgoingMessage.subject is empty: the message_builder must set it.")
        if not self.from_address:
            raise ValueError(
                "OutgoingMessage.from_address is empty: the message_builder must set it."
            )
        if not (self.html or self.text):
            raise ValueError(
                "OutgoingMessage has neither html nor text: the message_builder must set one."
            )


@dataclass(frozen=True)
class BatchRecipient:
    """One recipient inside a batch: our row id, the address and its template variables."""

    id: int
    email: str
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchRef:
    """Identifies a batch so the provider can tag the mail and events can be mapped back."""

    campaign_id: int | str
    attempt_id: int
    batch_id: int


@dataclass(frozen=True)
class Accepted:
    """The provider accepted every recipient of the call."""

    message_id: str | None = None
    http_status: int | None = None


class RecipientOutcome(StrEnum):
    """What the provider said about one recipient of a call."""

    ACCEPTED = "accepted"  # taken for delivery; the row becomes SENT
    REFUSED = "refused"  # refused permanently for this recipient; FAILED (permanent)
    DEFERRED = "deferred"  # refused for now, nothing sent to it; FAILED (transient), retried
    UNKNOWN = "unknown"  # may or may not have been taken (reply lost); UNCERTAIN


@dataclass(frozen=True)
class RecipientResult:
    """One recipient's outcome: ``recipient_id`` is :attr:`BatchRecipient.id`; ``code`` and
    ``text`` are the provider's own (an SMTP reply code and its text, an HTTP status ...);
    ``message_id`` is the provider's id of the accepted message, when it gave one."""

    recipient_id: int
    outcome: RecipientOutcome
    code: int | None = None
    text: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class RecipientResults:
    """A call's outcome recipient by recipient, for providers that know it (SMTP answers each
    RCPT). The engine writes each outcome as it is; it never splits such a call to find out
    who was refused.

    Name every recipient of the call once. ``rest`` says what became of recipients the
    results do not name: a FATAL error (e.g. the login was refused halfway) stops the campaign
    and leaves them retryable, any other kind applies to them as given; ``None`` makes them
    UNCERTAIN (the provider did not say, so they may have been sent).
    """

    results: Sequence[RecipientResult]
    rest: ProviderError | None = None


class ProviderError(Exception):
    """A classified failure of one provider call.

    ``kind`` decides what happens next (see :class:`FailureKind`). ``code`` is the provider's
    own code when there was one: the HTTP status for an HTTP API, the SMTP reply code for SMTP.
    ``resume_at`` is when the provider said to try again (rate limits).
    ``blames_recipients`` is true for a 400 that says an address is unacceptable: the engine then
    splits the batch to isolate the offending addresses. ``message`` never contains a secret.
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        code: int | None = None,
        resume_at: datetime | None = None,
        blames_recipients: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.resume_at = resume_at
        self.blames_recipients = blames_recipients

    def __repr__(self) -> str:
        return (
            f"ProviderError(kind={self.kind.value!r}, code={self.code!r}, "
            f"message={self.message!r}, resume_at={self.resume_at!r})"
        )


@runtime_checkable
class Provider(Protocol):
    """What the engine needs from an email provider.

    ``send_batch`` makes exactly one attempt per recipient and either returns :class:`Accepted`
    (every recipient taken), returns :class:`RecipientResults` (each recipient's outcome) or
    raises :class:`ProviderError` (nobody taken, or nobody known to be). It must not retry by
    itself: every retry decision belongs to the engine. Anything ``send_batch`` raises that is
    not a :class:`ProviderError` is taken as raised before the request left: nothing was
    submitted.

    Optional: ``validate(message: OutgoingMessage) -> None``, called once when an attempt is
    prepared, raises ``ValueError`` whose text names the field the provider cannot carry (the
    campaign then fails at once, nothing sent); ``cache_key`` (a string naming the provider's
    settings, no secret) lets a provider returned by ``@retry.provider_for`` be reused by every
    batch with the same key; ``warm() -> None`` builds, without opening any connection, what
    every call needs (an SDK client, a TLS context): a forking worker calls it before it forks,
    so every work horse inherits it instead of building it again.
    """

    name: str

    def send_batch(
        self,
        message: OutgoingMessage,
        recipients: Sequence[BatchRecipient],
        ref: BatchRef,
    ) -> Accepted | RecipientResults: ...


class LookupOutcome(StrEnum):
    """What a provider's event log says about one recipient of one batch.

    Ordered by strength of evidence: a delivery beats a permanent failure, which beats a
    temporary failure, which beats a bare acceptance. NOT_FOUND means the lookup *completed*
    and the recipient never appeared; whether that proves the mail was not accepted depends on
    how long ago it was sent, which the caller decides (events reach the log with a delay).
    """

    ACCEPTED = "accepted"
    FAILED_TEMPORARY = "failed_temporary"  # accepted; the provider is still trying to deliver
    FAILED_PERMANENT = "failed_permanent"  # accepted, then given up (bounce, or "old")
    DELIVERED = "delivered"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class RecipientLookup:
    """The strongest evidence found for one recipient.

    ``message_id`` is the provider's id of the accepted message (no angle brackets); ``at`` is
    when the deciding event happened (aware UTC); ``code``/``detail`` describe a failure.
    """

    outcome: LookupOutcome
    message_id: str | None = None
    at: datetime | None = None
    code: int | None = None
    detail: str | None = None


@runtime_checkable
class ReconcilingProvider(Protocol):
    """Optional: a provider that can say, from its event log, what became of a batch.

    ``lookup_batch`` answers for every recipient passed in (keyed by recipient id) and looks
    only at events since ``since`` (aware or naive UTC). It raises :class:`ProviderError` when
    the lookup itself failed (network, auth, rate limit): then nothing is known and every
    recipient must stay as it is. It never sends anything.
    """

    name: str

    def lookup_batch(
        self,
        ref: BatchRef,
        recipients: Sequence[BatchRecipient],
        since: datetime,
    ) -> Mapping[int, RecipientLookup]: ...
