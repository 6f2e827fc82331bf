"""Status vocabularies, stored as plain strings so new values never need a migration."""

from __future__ import annotations

from enum import StrEnum


class EmailStatus(StrEnum):
    """Status of a whole campaign (contract)."""

    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    SENDING = "SENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    PARTIALLY_SENT = "PARTIALLY_SENT"


class RecipientStatus(StrEnum):
    """Status of one recipient of one campaign (contract)."""

    PENDING = "PENDING"
    #: In flight: reported for the PENDING rows of a batch claimed by a live worker (the engine
    #: writes each row once, with its outcome; rows stored as SENDING come from 0.1 workers).
    SENDING = "SENDING"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    UNCERTAIN = "UNCERTAIN"
    SKIPPED = "SKIPPED"


class FailureKind(StrEnum):
    """How a provider error is treated before anything is retried.

    TRANSIENT: worth trying again (429/420, 5xx before the body was sent, connect errors).
    PERMANENT: this batch (or recipient) will never succeed as it is (400, 404, 413, bad address).
    FATAL: nothing in the campaign can succeed (401 bad key, 403 account/domain refused):
        stop submitting further batches.
    UNCERTAIN: the provider may or may not have accepted the mail (read timeout, 5xx after the
        body was sent); never re-sent automatically.
    """

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    FATAL = "fatal"
    UNCERTAIN = "uncertain"


class BatchStatus(StrEnum):
    """Status of one batch of recipients (one provider call, plus splits of a 400)."""

    QUEUED = "QUEUED"  # created, its job enqueued, not yet claimed
    SENDING = "SENDING"  # claimed by a worker under a lease
    DONE = "DONE"  # every recipient of the batch settled
    CANCELLED = "CANCELLED"  # not submitted: the attempt was halted by a fatal error
    UNCERTAIN = "UNCERTAIN"  # outcome unknown (timeout after send, or a worker died in flight)


class AttemptTrigger(StrEnum):
    """What started an attempt."""

    INITIAL = "initial"
    MANUAL = "manual"
    AUTOMATIC = "automatic"


SETTLED_BATCH_STATUSES: frozenset[str] = frozenset(
    {BatchStatus.DONE, BatchStatus.CANCELLED, BatchStatus.UNCERTAIN}
)
ACCEPTED_RECIPIENT_STATUSES: frozenset[str] = frozenset(
    {RecipientStatus.SENT, RecipientStatus.DELIVERED}
)
