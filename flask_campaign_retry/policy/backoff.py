"""When to try again: exponential backoff with full jitter, or the provider's resume time."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from flask_campaign_retry.clock import as_naive_utc

#: Spread retries of many batches held back by the same resume time over this many seconds.
RESUME_SPREAD_SECONDS = 1.0


def backoff_ceiling(tries: int, base: float, cap: float) -> float:
    """The upper bound of the delay before try ``tries + 1``: ``min(cap, base * 2**(tries-1))``."""
    if tries < 1:
        return 0.0
    exponent = min(tries - 1, 62)  # 2**62 seconds is past any cap; avoids float overflow
    return float(min(cap, base * (2.0**exponent)))


def backoff_delay(tries: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: a uniform delay in ``[0, backoff_ceiling(tries, base, cap)]`` seconds."""
    return (rng or random).uniform(0.0, backoff_ceiling(tries, base, cap))


def next_try_at(
    now: datetime,
    tries: int,
    base: float,
    cap: float,
    resume_at: datetime | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """The time of the next try: never before ``resume_at`` when the provider gave one."""
    if resume_at is not None:
        resume = as_naive_utc(resume_at)
        if resume > now:
            spread = (rng or random).uniform(0.0, RESUME_SPREAD_SECONDS)
            return resume + timedelta(seconds=spread)
    return now + timedelta(seconds=backoff_delay(tries, base, cap, rng))
