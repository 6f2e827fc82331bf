"""Write a batch's outcome in bulk: a few statements per batch, never one per recipient."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.clock import as_naive_utc, utcnow
from flask_campaign_retry.engine.per_recipient_rows import write_single_rows
from flask_campaign_retry.engine.submission import GroupOutcome, SubmissionResult
from flask_campaign_retry.state import AppState
from flask_campaign_retry.statuses import BatchStatus, FailureKind, RecipientStatus


@dataclass
class BatchOutcome:
    """Everything decided about one claimed batch, ready to be written.

    The claimed recipients are still PENDING (in flight under the claim, see
    :mod:`engine.claims`): each is written once, here. With ``reschedule_at`` set, recipients
    of transient failures stay PENDING in the same batch (keeping their error), which is queued
    again for that time; otherwise they end FAILED (transient). Recipients the provider never
    got (``unsubmitted``) are left PENDING. ``pause_until`` holds the whole attempt back (a
    provider quota said when to resume).
    """

    batch_id: int
    attempt_id: int
    claim_token: str
    skipped_ids: list[int] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    result: SubmissionResult | None = None
    builder_error: str | None = None
    all_claimed_ids: Sequence[int] = ()
    reschedule_at: datetime | None = None
    pause_until: datetime | None = None
    #: Key of the provider that carried this run (recorded on the batch row).
    provider: str | None = None
    #: Claims of the batch so far, this one included (names the next try's job).
    tries: int = 0
    #: The batch's campaign: rows written by batch id must also name it (a row of a deleted
    #: campaign may name a batch id the database reused).
    campaign_id: Any = None

    def _deferred(self, group: GroupOutcome) -> bool:
        error = group.error
        return (
            self.reschedule_at is not None
            and error is not None
            and error.kind is FailureKind.TRANSIENT
        )

    def counts(self) -> dict[str, int]:
        """Recipients settled by this run, by outcome (deferred ones are not counted yet)."""
        sent = failed = uncertain = 0
        if self.result is not None:
            for group in self.result.outcomes:
                n = len(group.recipients)
                if group.error is None:
                    sent += n
                elif self._deferred(group):
                    continue
                elif group.error.kind is FailureKind.UNCERTAIN:
                    uncertain += n
                else:
                    failed += n
        failed += len(self.invalid)
        if self.builder_error is not None:
            failed += len(self.all_claimed_ids)
        return {
            "sent": sent,
            "failed": failed,
            "uncertain": uncertain,
            "skipped": len(self.skipped_ids),
        }

    @property
    def halt_reason(self) -> str | None:
        if self.builder_error is not None:
            return self.builder_error
        fatal = self.result.fatal if self.result is not None else None
        return fatal.message if fatal is not None else None

    @property
    def settles(self) -> bool:
        """False when the batch goes back to the queue for another try."""
        return self.reschedule_at is None


def _ids(recipients: Iterable[Any]) -> list[int]:
    return [recipient.id for recipient in recipients]


class OutcomeWriter:
    """Applies a :class:`BatchOutcome` inside the caller's transaction."""

    def __init__(self, state: AppState) -> None:
        self.session = state.db.session
        self.recipients = state.models.recipient.__table__
        self.batches = state.models.batch.__table__
        self.attempts = state.models.attempt.__table__

    def _set(self, where: sa.ColumnElement[bool], **values: Any) -> None:
        self.session.execute(sa.update(self.recipients).where(where).values(**values))

    def _fail(
        self,
        ids: Sequence[int],
        kind: str,
        code: int | None,
        message: str,
        status: RecipientStatus | None = None,
    ) -> None:
        if status is None:
            uncertain = kind == FailureKind.UNCERTAIN
            status = RecipientStatus.UNCERTAIN if uncertain else RecipientStatus.FAILED
        self._set(
            # Only rows this run holds (still PENDING): never a row something else settled.
            sa.and_(self.recipients.c.id.in_(ids), self.held()),
            status=status,
            failure_kind=kind,
            error_code=code,
            error_message=message[:500],
            submissions=self.recipients.c.submissions + 1,
        )

    def held(self) -> sa.ColumnElement[bool]:
        """Rows of a claimed batch this run still holds: PENDING, as the claim took them."""
        held: sa.ColumnElement[bool] = self.recipients.c.status == RecipientStatus.PENDING
        return held

    def whole_batch(self, outcome: BatchOutcome) -> sa.ColumnElement[bool]:
        """Every row the run holds in its batch (by batch id, so no id list is sent)."""
        r = self.recipients.c
        where = sa.and_(r.batch_id == outcome.batch_id, self.held())
        if outcome.campaign_id is not None:
            where = sa.and_(where, r.campaign_id == outcome.campaign_id)
        return where

    def settle_statement(self, outcome: BatchOutcome) -> sa.Update:
        """The UPDATE recording the batch's run, matching only while this worker still holds
        its claim (SENDING under its token)."""
        b = self.batches.c
        counts = outcome.counts()
        nothing_submitted = outcome.result is not None and not outcome.result.outcomes
        if not outcome.settles:
            status = BatchStatus.QUEUED
        elif nothing_submitted and counts["sent"] == 0:
            status = BatchStatus.CANCELLED
        else:
            status = BatchStatus.DONE
        kind, code, message = self._first_error(outcome)
        values: dict[str, Any] = {name: b[name] + n for name, n in counts.items()}
        message_id = self._message_id(outcome)
        if message_id is not None:
            values["provider_message_id"] = message_id
        if outcome.provider is not None:
            values["provider"] = outcome.provider[:100]
        return (
            sa.update(self.batches)
            .where(
                b.id == outcome.batch_id,
                b.status == BatchStatus.SENDING,
                b.claim_token == outcome.claim_token,
            )
            .values(
                status=status,
                claim_token=None,
                lease_until=None,
                next_try_at=outcome.reschedule_at,
                settled_at=utcnow() if outcome.settles else None,
                error_kind=kind,
                error_code=code,
                error_message=message,
                **values,
            )
        )

    def settle_batch(self, outcome: BatchOutcome) -> bool:
        """Record the batch's run if this worker still holds its claim; False if it lost it."""
        settled = self.session.execute(self.settle_statement(outcome))
        return bool(settled.rowcount == 1)

    @staticmethod
    def _message_id(outcome: BatchOutcome) -> str | None:
        if outcome.result is None:
            return None
        for group in outcome.result.outcomes:
            if group.message_id:
                return group.message_id
        return None

    @staticmethod
    def _first_error(outcome: BatchOutcome) -> tuple[str | None, int | None, str | None]:
        if outcome.builder_error is not None:
            return FailureKind.FATAL.value, None, outcome.builder_error[:500]
        if outcome.result is not None:
            for group in outcome.result.outcomes:
                if group.error is not None:
                    error = group.error
                    return error.kind.value, error.code, error.message[:500]
        return None, None, None

    def write_recipients(self, outcome: BatchOutcome) -> None:
        """Apply each recipient's state after this run of the batch."""
        r = self.recipients.c
        if outcome.skipped_ids:
            self._set(r.id.in_(outcome.skipped_ids), status=RecipientStatus.SKIPPED)
        if outcome.invalid:
            self.session.execute(
                sa.update(self.recipients)
                .where(r.id == sa.bindparam("rid"))
                .values(
                    status=RecipientStatus.FAILED,
                    failure_kind=FailureKind.PERMANENT.value,
                    error_message=sa.bindparam("reason"),
                ),
                [{"rid": rid, "reason": reason[:500]} for rid, reason in outcome.invalid],
            )
        if outcome.builder_error is not None:
            self._fail(
                outcome.all_claimed_ids, FailureKind.FATAL.value, None, outcome.builder_error
            )
            return
        result = outcome.result
        if result is None:
            return
        now = utcnow()
        whole_batch = len(result.outcomes) == 1 and not result.unsubmitted
        singles = [group for group in result.outcomes if len(group.recipients) == 1]
        if len(singles) > 1:
            write_single_rows(self.session, self.recipients, singles, outcome._deferred, now)
        for group in result.outcomes:
            if len(singles) > 1 and len(group.recipients) == 1:
                continue
            if group.error is None:
                where = (
                    self.whole_batch(outcome)
                    if whole_batch
                    else sa.and_(r.id.in_(_ids(group.recipients)), self.held())
                )
                self._set(
                    where,
                    status=RecipientStatus.SENT,
                    provider_message_id=group.message_id,
                    sent_at=now,
                    failure_kind=None,
                    error_code=None,
                    error_message=None,
                    submissions=r.submissions + 1,
                )
                continue
            error = group.error
            # A deferred transient failure waits in PENDING, keeping its last error for the UI.
            deferred = RecipientStatus.PENDING if outcome._deferred(group) else None
            self._fail(
                _ids(group.recipients), error.kind.value, error.code, error.message, deferred
            )
        # ``result.unsubmitted`` needs no write: those rows are still PENDING, never submitted.

    def count_values(self, outcome: BatchOutcome) -> dict[str, Any]:
        """What the run adds to its attempt row: counters, settled batches, halt, pause."""
        a = self.attempts.c
        values: dict[str, Any] = {name: a[name] + n for name, n in outcome.counts().items()}
        if outcome.settles:
            values["batches_settled"] = a.batches_settled + 1
        halt = outcome.halt_reason
        if halt is not None:
            values["halt_reason"] = sa.func.coalesce(a.halt_reason, halt[:500])
        if outcome.pause_until is not None:
            pause = as_naive_utc(outcome.pause_until)
            values["paused_until"] = sa.case(
                (sa.or_(a.paused_until.is_(None), a.paused_until < pause), pause),
                else_=a.paused_until,
            )
        return values

    def count_into_attempt(self, outcome: BatchOutcome) -> tuple[int, int]:
        """Add the run's counts to its attempt; return (batches settled, batches total)."""
        a = self.attempts.c
        row = self.session.execute(
            sa.update(self.attempts)
            .where(a.id == outcome.attempt_id)
            .values(**self.count_values(outcome))
            .returning(a.batches_settled, a.batches_total)
        ).one()
        return int(row[0]), int(row[1])
