"""The provider interface: send one batch, get accepted or a classified error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ..statuses import FailureKind


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


class ProviderError(Exception):
    """A classified failure of one provider call.

    ``kind`` decides what happens next (see :class:`FailureKind`). ``code`` is the HTTP status
    when there was one. ``resume_at`` is when the provider said to try again (rate limits).
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

    ``send_batch`` makes exactly one request to the provider and either returns
    :class:`Accepted` or raises :class:`ProviderError`. It must not retry by itself: every retry
    decision belongs to the engine.
    """

    name: str

    def send_batch(
        self,
        message: OutgoingMessage,
        recipients: Sequence[BatchRecipient],
        ref: BatchRef,
    ) -> Accepted: ...
