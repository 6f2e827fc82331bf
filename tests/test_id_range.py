"""Ids the host's key column cannot hold are "no such campaign" on every route and in the CLI.

The host app's key is ``Mapped[int]``, a 32-bit ``INTEGER`` on PostgreSQL: 2**31 used to reach
the database and answer 500 ("integer out of range"). SQLite keys are 64-bit.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_campaign_retry.state import get_state
from flask_campaign_retry.web.lookup import max_integer_id
from tests.webapp import draft, json_headers

POSTS = ("send", "retry", "clone")


@pytest.fixture(params=["sqlite", "postgres", "psycopg3"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Also psycopg 3, which binds ``CAST(%(id)s AS INTEGER)``: 2**31 fails in the database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    url: str = request.getfixturevalue("postgres_url")
    if request.param == "psycopg3":
        pytest.importorskip("psycopg")
        url = url.replace("+psycopg2", "+psycopg")
    return url


GETS = ("delivery", "failures")


def _answers(client: FlaskClient, raw: str) -> list[int]:
    headers = json_headers(client)
    codes = [client.post(f"/campaigns/{raw}/{verb}", headers=headers).status_code for verb in POSTS]
    codes += [client.get(f"/campaigns/{raw}/{verb}").status_code for verb in GETS]
    return codes


def test_the_limit_follows_the_key_column_and_the_database(web_app: Flask) -> None:
    dialect = get_state().db.engine.dialect.name
    expected = 2**31 - 1 if dialect == "postgresql" else 2**63 - 1
    assert max_integer_id(get_state()) == expected


def test_2_to_the_31_is_404_on_every_route(web_app: Flask, client: FlaskClient) -> None:
    draft(2)
    for raw in ("2147483648", "2147483647", "9223372036854775807", "9223372036854775808"):
        assert _answers(client, raw) == [404] * 5, raw


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.one_of(st.integers(min_value=2**31, max_value=10**30), st.integers(max_value=0)))
def test_ids_outside_the_key_range_are_404(web_app: Flask, client: FlaskClient, value: int) -> None:
    if value <= 2**63 - 1 and value > 0 and get_state().db.engine.dialect.name == "sqlite":
        value += 2**63  # within SQLite's 64-bit keys: push it past them
    codes = _answers(client, str(value))
    assert codes == [404] * 5


def test_the_cli_says_which_ids_exist(web_app: Flask) -> None:
    limit = max_integer_id(get_state())
    runner = web_app.test_cli_runner()
    for command in ("status", "send", "retry", "clone"):
        result = runner.invoke(args=["campaign-retry", command, str(limit + 1)])
        assert result.exit_code == 1
        assert result.output == (
            f"Error: There is no campaign with id '{limit + 1}': campaign ids are whole "
            f"numbers from 1 to {limit}.\n"
        )


def test_the_largest_holdable_id_is_a_plain_404_not_an_error(
    web_app: Flask, client: FlaskClient, mailgun: Any
) -> None:
    limit = max_integer_id(get_state())
    response = client.get(f"/campaigns/{limit}/delivery")
    assert response.status_code == 404
    assert response.get_json()["code"] == "unknown_campaign"
