"""Deterministic RQ job ids: one id per piece of work, so enqueuing it again is idempotent.

A piece of work is "prepare attempt A", "try number T of batch B" or "the automatic retry of
campaign C after R retries". Its id is the same whoever enqueues it (the web process, a job,
the recovery sweep), so :meth:`QueueBackend.ensure` can tell whether it already waits or runs
and the sweep can requeue missing work without waiting for an idle queue. RQ job ids allow
``[A-Za-z0-9_-]`` only; the queue name is part of the id, because job keys are shared by every
queue of a Redis database.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

_SAFE = re.compile(r"[A-Za-z0-9_]{1,64}")


def _part(value: Any) -> str:
    text = str(value)
    if _SAFE.fullmatch(text):
        return text
    return "h" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _id(queue_name: str, kind: str, *parts: Any) -> str:
    return "-".join(["fcr", _part(queue_name), kind, *(_part(p) for p in parts)])


def prepare_job_id(queue_name: str, attempt_id: int) -> str:
    """The preparation of attempt ``attempt_id``."""
    return _id(queue_name, "prepare", attempt_id)


def batch_job_id(queue_name: str, batch_id: int, tries: int, wait: datetime | None = None) -> str:
    """Claim number ``tries + 1`` of batch ``batch_id`` (``tries``: claims so far). A job that
    found its batch not yet due and waits for ``wait`` gets an id of its own (its current id
    is still running)."""
    if wait is None:
        return _id(queue_name, "batch", batch_id, tries)
    return _id(queue_name, "batch", batch_id, tries, f"w{int(wait.timestamp())}")


def auto_retry_job_id(queue_name: str, campaign_id: Any, retry_count: int) -> str:
    """The automatic retry of campaign ``campaign_id`` planned after ``retry_count`` retries."""
    return _id(queue_name, "autoretry", campaign_id, retry_count)
