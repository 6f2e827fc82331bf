"""Small units no other test reaches on every path: the recipient loader's item shapes and
refusals, the insert that ignores duplicates on each database, the mixin's default
``max_retries`` and ``campaign_mixin()``'s spellings."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.dialects import mysql, postgresql, sqlite

from flask_campaign_retry.engine.recipients import RecipientListError, iter_recipients
from flask_campaign_retry.mixins import CampaignMixin, _default_max_retries, campaign_mixin
from flask_campaign_retry.sql import insert_ignoring_duplicates


def test_every_documented_item_shape_gives_an_address_and_its_variables() -> None:
    items = [
        "  Ann@Example.COM ",
        {"email": "bob@example.com", "variables": {"name": "Bob"}},
        {"email": "cy@example.com", "vars": {"name": "Cy"}},
        {"email": "di@example.com"},
        ("ed@example.com", {"name": "Ed"}),
        SimpleNamespace(email="fay@example.com", recipient_variables={"name": "Fay"}),
        SimpleNamespace(email="gus@example.com"),
    ]
    assert list(iter_recipients(items)) == [
        ("Ann@example.com", {}),
        ("bob@example.com", {"name": "Bob"}),
        ("cy@example.com", {"name": "Cy"}),
        ("di@example.com", {}),
        ("ed@example.com", {"name": "Ed"}),
        ("fay@example.com", {"name": "Fay"}),
        ("gus@example.com", {}),
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            42,
            "recipients_loader yielded 'int'; yield an email string, (email, variables) tuples, "
            "{'email': ..., 'variables': {...}} mappings, or objects with an `email` attribute.",
        ),
        (("a@example.com", {}, "extra"), "recipients_loader yielded 'tuple'; yield an email"),
        (
            {"email": "  "},
            "recipients_loader yielded a recipient without an email: {'email': '  '}",
        ),
        ({"variables": {}}, "recipients_loader yielded a recipient without an email"),
        (
            ("a@example.com", ["x"]),
            "Recipient variables for 'a@example.com' must be a mapping, got list.",
        ),
    ],
)
def test_an_item_of_no_documented_shape_is_refused_saying_what_to_yield(
    item: Any, message: str
) -> None:
    with pytest.raises(RecipientListError) as raised:
        list(iter_recipients([item]))
    assert str(raised.value).startswith(message)


def test_the_insert_ignores_duplicates_in_each_database_s_own_words() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    cases = {
        "postgresql": (postgresql.dialect(), "ON CONFLICT DO NOTHING"),
        "sqlite": (sqlite.dialect(), "ON CONFLICT DO NOTHING"),
        "mysql": (mysql.dialect(), "INSERT IGNORE INTO"),
        "mariadb": (mysql.dialect(), "INSERT IGNORE INTO"),
    }
    for name, (dialect, words) in cases.items():
        sql = str(insert_ignoring_duplicates(table, name).compile(dialect=dialect))
        assert words in sql, name
    other = str(insert_ignoring_duplicates(table, "oracle").compile(dialect=sqlite.dialect()))
    assert "IGNORE" not in other and "CONFLICT" not in other


def test_the_default_max_retries_is_the_app_s_whole_number_or_three(app: Flask) -> None:
    app.config["CAMPAIGN_RETRY_MAX_RETRIES"] = 7
    assert _default_max_retries() == 7
    app.config["CAMPAIGN_RETRY_MAX_RETRIES"] = "7"
    assert _default_max_retries() == 3


def test_the_default_max_retries_outside_an_app_is_three() -> None:
    assert _default_max_retries() == 3


def test_campaign_mixin_without_renames_is_the_mixin_itself() -> None:
    assert campaign_mixin() is CampaignMixin
    assert campaign_mixin(status="status") is CampaignMixin


@pytest.mark.parametrize("name", ["send status", "class", "", 3])
def test_campaign_mixin_refuses_a_name_that_is_no_column_name(name: Any) -> None:
    with pytest.raises(TypeError) as raised:
        campaign_mixin(status=name)
    assert str(raised.value) == f"campaign_mixin(status=...) must be a column name, got {name!r}."
