"""The first send's snapshot across chunks of the host's list: a chunk with nothing sendable (only
invalid addresses, or only duplicates of earlier chunks) makes no batch and does not end the
snapshot; each batch's ``seq`` and ``size`` are what it really got; nothing of another campaign
is touched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests import hostapp
from tests.helpers import attempts, batches, campaign_with, emails, prepare_only, recipient_rows


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2, CAMPAIGN_RETRY_BATCH_CHAIN_SECONDS=0)
    with app.app_context():
        yield app


def _layout(campaign: Any) -> list[tuple[int, int, list[str]]]:
    """(seq, size, addresses) of each batch of the campaign, in order."""
    rows = recipient_rows(campaign)
    return [
        (
            batch.seq,
            batch.size,
            sorted(e for e, row in rows.items() if row.batch_id == batch.id),
        )
        for batch in batches(campaign)
    ]


def _another_campaign_prepared(app: Flask) -> tuple[Any, list[tuple[int, int, list[str]]]]:
    """Another campaign with batches of its own, and their layout: nothing may touch them."""
    other = campaign_with(emails(2, prefix="other"), list_name="other")
    prepare_only(app, other)
    return other, _layout(other)


def test_a_chunk_of_only_invalid_addresses_makes_no_batch_and_the_rest_follows(
    app: Flask,
) -> None:
    other, before = _another_campaign_prepared(app)
    campaign = campaign_with(
        ["not-an-address", "also not one", "c@example.com", "d@example.com", "e@example.com"]
    )

    prepare_only(app, campaign)

    assert _layout(campaign) == [
        (0, 2, ["c@example.com", "d@example.com"]),
        (1, 1, ["e@example.com"]),
    ]
    rows = recipient_rows(campaign)
    assert {e: (row.status, row.batch_id) for e, row in rows.items() if "@" not in e} == {
        "not-an-address": ("FAILED", None),
        "also not one": ("FAILED", None),
    }
    [attempt] = attempts(campaign)
    assert (attempt.batches_total, attempt.targeted) == (2, 5)
    assert _layout(other) == before


def test_a_chunk_of_only_duplicates_of_earlier_chunks_makes_no_batch_and_the_rest_follows(
    app: Flask,
) -> None:
    other, before = _another_campaign_prepared(app)
    campaign = campaign_with(
        [
            "a@example.com",
            "b@example.com",
            "A@example.com",
            "B@EXAMPLE.COM",
            "c@example.com",
            "d@example.com",
        ]
    )

    prepare_only(app, campaign)

    assert _layout(campaign) == [
        (0, 2, ["a@example.com", "b@example.com"]),
        (1, 2, ["c@example.com", "d@example.com"]),
    ]
    [attempt] = attempts(campaign)
    assert (attempt.batches_total, attempt.targeted) == (2, 4)
    assert hostapp.retry.delivery(campaign)["total_recipients"] == 4
    assert _layout(other) == before
