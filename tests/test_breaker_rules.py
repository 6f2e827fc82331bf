"""The circuit breaker's rules one call at a time: a run of outage-type failures opens it at
the threshold and not before (a run is forgotten after an hour of silence, an open breaker is
kept however long), failures while open change nothing, a failed probe re-opens it for one
more cooldown, only one probe goes out per cooldown, and a success ends a run or closes it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.failover import RUN_MEMORY_SECONDS, Breaker, _seconds
from flask_campaign_retry.state import get_state

COOLDOWN = 60


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(
        CAMPAIGN_RETRY_FALLBACK_PROVIDER="sandbox",
        CAMPAIGN_RETRY_BREAKER_THRESHOLD=3,
        CAMPAIGN_RETRY_BREAKER_COOLDOWN=COOLDOWN,
    )
    with app.app_context():
        yield app


@pytest.fixture
def breaker(app: Flask) -> Breaker:
    return Breaker(get_state(), get_state().queue(app).connection, "mailgun")


def _stored(breaker: Breaker) -> dict[str, str]:
    raw = breaker.connection.hgetall(breaker.key)
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_a_run_opens_the_breaker_at_the_threshold_and_is_kept_while_open(
    breaker: Breaker,
) -> None:
    now = utcnow()
    breaker.failed(now)
    breaker.failed(now)
    assert _stored(breaker) == {"failures": "2"}
    assert 0 < breaker.connection.ttl(breaker.key) <= RUN_MEMORY_SECONDS
    assert breaker.route(now) == "closed"

    breaker.failed(now)

    stored = _stored(breaker)
    assert stored["failures"] == "3" and len(stored["episode"]) == 32
    assert float(stored["open_until"]) == pytest.approx(
        _seconds(now + timedelta(seconds=COOLDOWN)), abs=0.001
    )
    assert breaker.connection.ttl(breaker.key) == -1  # no expiry while open
    assert breaker.route(now) == "open"
    assert breaker.route(now + timedelta(seconds=COOLDOWN - 1)) == "open"


def test_failures_while_open_move_nothing_and_a_failed_probe_reopens_for_a_cooldown(
    breaker: Breaker,
) -> None:
    now = utcnow()
    for _ in range(3):
        breaker.failed(now)
    opened = _stored(breaker)
    breaker.failed(now + timedelta(seconds=1))  # still open: another worker's late failure
    assert {k: v for k, v in _stored(breaker).items() if k != "failures"} == {
        k: v for k, v in opened.items() if k != "failures"
    }

    later = now + timedelta(seconds=COOLDOWN + 1)
    assert breaker.route(later) == "probe"
    assert breaker.route(later) == "open"  # one probe per cooldown
    breaker.failed(later)  # the probe failed

    reopened = _stored(breaker)
    assert reopened["episode"] == opened["episode"]
    assert float(reopened["open_until"]) - float(opened["open_until"]) == pytest.approx(
        COOLDOWN + 1, abs=0.01
    )
    assert breaker.connection.exists(breaker.probe_key) == 0
    assert breaker.route(later) == "open"
    assert breaker.route(later + timedelta(seconds=COOLDOWN + 1)) == "probe"


def test_a_success_ends_a_run_or_closes_the_breaker(breaker: Breaker) -> None:
    now = utcnow()
    breaker.succeeded()  # nothing stored: nothing to end
    assert _stored(breaker) == {}
    breaker.failed(now)
    breaker.failed(now)
    breaker.succeeded()
    assert _stored(breaker) == {"failures": "0"}
    breaker.succeeded()
    assert _stored(breaker) == {"failures": "0"}
    breaker.failed(now)
    breaker.failed(now)
    assert breaker.route(now) == "closed"  # the run started again from zero
    breaker.failed(now)
    assert breaker.route(now) == "open"
    assert breaker.route(now + timedelta(seconds=COOLDOWN + 1)) == "probe"
    breaker.succeeded()
    assert _stored(breaker) == {}
    assert breaker.connection.exists(breaker.probe_key) == 0
    assert breaker.route(now) == "closed"
