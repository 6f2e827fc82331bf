"""PostgreSQL: settle a batch, write its recipients and count it into its attempt in one
statement, when the whole batch was accepted in one call (the common case).

``WITH settled AS (UPDATE batch … WHERE SENDING AND claim_token RETURNING …),
written AS (UPDATE recipient … WHERE batch AND PENDING AND settled)
UPDATE attempt … FROM settled RETURNING batches_settled, batches_total``

Every part depends on ``settled``: when this worker lost its claim, nothing is written and
no row comes back (the caller rolls back, as with the separate statements). PostgreSQL runs
each data-modifying CTE exactly once whether or not the main statement reads it. With the
claim and the take folded too (:mod:`engine.claims`), a batch costs two statements.

Any other outcome (exclusions, invalid addresses, per-recipient results, failures) folds
only the settle and the count, and its recipient writes follow in the same transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.outcomes import BatchOutcome, OutcomeWriter
from flask_campaign_retry.statuses import RecipientStatus


def whole_batch_accepted(outcome: BatchOutcome) -> bool:
    """True when every taken recipient was submitted in one call that was accepted."""
    result = outcome.result
    return (
        result is not None
        and outcome.builder_error is None
        and not outcome.skipped_ids
        and not outcome.invalid
        and not result.unsubmitted
        and len(result.outcomes) == 1
        and result.outcomes[0].error is None
    )


def settle_and_count(writer: OutcomeWriter, outcome: BatchOutcome) -> tuple[int, int] | None:
    """Settle and count in one statement, writing the recipients in it too when the whole
    batch was accepted; (batches settled, batches total), or None when the claim was lost
    (nothing written)."""
    a = writer.attempts.c
    settled = writer.settle_statement(outcome).returning(writer.batches.c.attempt_id).cte("settled")
    statement: Any = (
        sa.update(writer.attempts)
        .where(a.id == settled.c.attempt_id)
        .values(**writer.count_values(outcome))
        .returning(a.batches_settled, a.batches_total)
    )
    if whole_batch_accepted(outcome):
        statement = statement.add_cte(_written(writer, outcome, settled))
    row = writer.session.execute(statement).first()
    return None if row is None else (int(row[0]), int(row[1]))


def _written(writer: OutcomeWriter, outcome: BatchOutcome, settled: Any) -> Any:
    assert outcome.result is not None
    group = outcome.result.outcomes[0]
    r = writer.recipients.c
    return (
        sa.update(writer.recipients)
        .where(
            writer.whole_batch(outcome),
            sa.exists().where(settled.c.attempt_id == outcome.attempt_id),
        )
        .values(
            status=RecipientStatus.SENT,
            provider_message_id=group.message_id,
            sent_at=utcnow(),
            failure_kind=None,
            error_code=None,
            error_message=None,
            submissions=r.submissions + 1,
        )
        .cte("written")
    )


def record(writer: OutcomeWriter, outcome: BatchOutcome) -> tuple[int, int] | None:
    """Settle, write and count the run (PostgreSQL); None when the claim was lost."""
    counted = settle_and_count(writer, outcome)
    if counted is not None and not whole_batch_accepted(outcome):
        writer.write_recipients(outcome)
    return counted
