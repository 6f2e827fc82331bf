"""What one recovery sweep did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecoveryReport:
    """What one sweep did (printed by the CLI, logged by the scheduled job)."""

    expired_batches: list[int] = field(default_factory=list)
    reconciled: dict[str, int] = field(default_factory=dict)
    finalized_attempts: list[int] = field(default_factory=list)
    requeued_batches: list[int] = field(default_factory=list)
    requeued_attempts: list[int] = field(default_factory=list)
    requeued_auto_retries: list[Any] = field(default_factory=list)
    started_scheduled: list[Any] = field(default_factory=list)
    held_scheduled: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "expired_batches": self.expired_batches,
            "reconciled": self.reconciled,
            "finalized_attempts": self.finalized_attempts,
            "requeued_batches": self.requeued_batches,
            "requeued_attempts": self.requeued_attempts,
            "requeued_auto_retries": self.requeued_auto_retries,
            "started_scheduled": self.started_scheduled,
            "held_scheduled": self.held_scheduled,
        }
