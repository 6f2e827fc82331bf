"""The schedule route's time fields, exactly: ``at`` (ISO 8601 with a zone) or ``at_utc`` (a
zoneless time taken as UTC), never both, never empty, and an ``at_utc`` that carries a zone of
its own refused rather than read twice; an unknown campaign's id quoted, cut at 40 characters.
Each refusal is a 400 naming the fix and leaves the draft as it was (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.clock import utcnow
from tests.helpers import reload
from tests.webapp import draft, json_headers

BOTH = "Give either at or at_utc, not both."
MISSING = "at must be the time to send at, in ISO 8601 with a zone, e.g. 2026-12-24T09:00:00Z."
ZONED = "at_utc is UTC already: leave out the zone, or use at instead."


def _schedule(client: FlaskClient, campaign: Any, body: dict[str, Any]) -> Any:
    return client.post(
        f"/campaigns/{campaign.id}/schedule", json=body, headers=json_headers(client)
    )


def _later() -> str:
    return (utcnow() + timedelta(hours=3)).replace(microsecond=0).isoformat()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"at": "2030-01-01T09:00:00Z", "at_utc": "2030-01-01T09:00"}, BOTH),
        ({}, MISSING),
        ({"at": ""}, MISSING),
        ({"at": "   "}, MISSING),
        ({"at": 1893488400}, MISSING),
        ({"at_utc": None}, MISSING),
        ({"at_utc": "2030-01-01T09:00:00Z"}, ZONED),
        ({"at_utc": "2030-01-01T09:00:00z"}, ZONED),
        ({"at_utc": "2030-01-01T09:00:00+01:00"}, ZONED),
        ({"at_utc": "2030-01-01T09:00:00-05:00"}, ZONED),
        ({"at_utc": "2030-01-01+01:00"}, ZONED),
        ({"at_utc": "2030-01-01-05:00"}, ZONED),
    ],
)
def test_a_bad_time_field_is_a_400_naming_the_fix_and_the_draft_stays(
    web_app: Flask, client: FlaskClient, body: dict[str, Any], reason: str
) -> None:
    campaign = draft(2)
    response = _schedule(client, campaign, body)
    assert (response.status_code, response.get_json()["reason"]) == (400, reason)
    campaign = reload(campaign)
    assert (campaign.status, campaign.scheduled_at) == (EmailStatus.DRAFT, None)


def test_a_zoneless_at_utc_is_taken_as_utc(web_app: Flask, client: FlaskClient) -> None:
    campaign = draft(2)
    at = _later()
    response = _schedule(client, campaign, {"at_utc": f"  {at}  "})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scheduled_at"] == at + "Z"
    assert reload(campaign).scheduled_at.isoformat() == at


def test_an_unknown_campaign_is_quoted_in_the_404_cut_at_40_characters(
    web_app: Flask, client: FlaskClient
) -> None:
    long_id = "9" * 39 + "ab"
    response = client.post(
        f"/campaigns/{long_id}/schedule", json={"at": "x"}, headers=json_headers(client)
    )
    reason = response.get_json()["reason"]
    assert (response.status_code, reason) == (
        404,
        f"There is no campaign with id {long_id[:40]!r}.",
    )
