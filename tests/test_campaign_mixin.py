"""`campaign_mixin(...)`: the mixin's fields under the host's names, its errors at class
definition, and the accessors the extension reaches them through."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import DeclarativeBase, mapped_column

from flask_campaign_retry import CampaignMixin, EmailStatus, campaign_mixin
from flask_campaign_retry.campaign_fields import (
    CAMPAIGN_FIELDS,
    column_values,
    columns,
    fields,
    mixin_column_names,
)


def _model(mixin: type, *, own_status: bool = False) -> Any:
    class Base(DeclarativeBase):
        pass

    attributes: dict[str, Any] = {
        "__tablename__": "newsletter",
        "id": mapped_column(sa.Integer, primary_key=True),
    }
    if own_status:
        attributes["status"] = mapped_column(sa.String(20), default="published")
    return type("Newsletter", (mixin, Base), attributes)


def _describe(column: sa.Column[Any]) -> tuple[Any, ...]:
    default = column.default.arg if column.default is not None else None
    default = default.__name__ if callable(default) else default  # SQLAlchemy wraps callables
    server = column.server_default.arg if column.server_default is not None else None  # type: ignore[attr-defined]
    fks = sorted(fk.target_fullname for fk in column.foreign_keys)
    return (repr(column.type), column.nullable, column.index, default, server, fks)


def test_no_rename_is_the_plain_mixin() -> None:
    assert campaign_mixin() is CampaignMixin
    assert campaign_mixin(status="status") is CampaignMixin
    assert not hasattr(CampaignMixin, "__campaign_retry_columns__")


def test_renamed_columns_are_the_mixin_columns_under_other_names() -> None:
    plain = _model(CampaignMixin).__table__
    renamed = _model(campaign_mixin(status="send_status", cloned_from_id="copy_of"))
    table = renamed.__table__
    assert renamed.__campaign_retry_columns__ == {
        "status": "send_status",
        "cloned_from_id": "copy_of",
    }
    assert "status" not in table.c and "cloned_from_id" not in table.c
    for field in CAMPAIGN_FIELDS:
        name = {"status": "send_status", "cloned_from_id": "copy_of"}.get(field, field)
        assert _describe(table.c[name]) == _describe(plain.c[field]), field
    assert [i.name for i in table.indexes] == ["ix_newsletter_send_status"]


def test_the_hosts_own_status_stays_its_own() -> None:
    model = _model(campaign_mixin(status="send_status"), own_status=True)
    campaign = model(id=1)
    fields(campaign).status = EmailStatus.SENDING
    assert (campaign.send_status, campaign.status) == (EmailStatus.SENDING, None)
    assert str(fields(model).status == "SENT") == "newsletter.send_status = :send_status_1"
    assert columns(model.__table__).status is model.__table__.c.send_status
    assert columns(model.__table__).status is not model.__table__.c.status
    assert column_values(model.__table__, status="SENT", retry_count=1) == {
        "send_status": "SENT",
        "retry_count": 1,
    }
    assert column_values(model, status="SENT") == {"send_status": "SENT"}
    assert "status" not in mixin_column_names(model)
    assert "send_status" in mixin_column_names(model)


def test_plain_hosts_get_their_own_objects_back() -> None:
    model = _model(CampaignMixin)
    campaign = model(id=1)
    assert fields(campaign) is campaign
    assert fields(model) is model
    assert columns(model.__table__) is model.__table__.c
    values = {"status": "SENT"}
    assert column_values(model.__table__, **values) == values


def test_unknown_fields_are_refused_with_the_list_of_fields() -> None:
    with pytest.raises(TypeError, match=r"unknown field\(s\) stat, state; the fields are: status"):
        campaign_mixin(stat="x", state="y")


@pytest.mark.parametrize("name", ["", "send status", "1st", "class", 3])
def test_names_that_cannot_be_columns_are_refused(name: Any) -> None:
    with pytest.raises(TypeError, match=r"campaign_mixin\(status=...\) must be a column name"):
        campaign_mixin(status=name)


def test_colliding_names_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_reason and status would both be named 'x'"):
        campaign_mixin(status="x", failure_reason="x")
    with pytest.raises(
        ValueError,
        match="failure_reason and status would both be named 'status': give status another name",
    ):
        campaign_mixin(failure_reason="status")


@settings(max_examples=25, deadline=None)
@given(st.sets(st.sampled_from(CAMPAIGN_FIELDS), min_size=1))
def test_any_set_of_renamed_fields_maps_back(renamed_fields: set[str]) -> None:
    names = {field: f"host_{field}" for field in renamed_fields}
    model = _model(campaign_mixin(**names))
    expected = {names.get(field, field) for field in CAMPAIGN_FIELDS}
    assert {c.key for c in model.__table__.c} == expected | {"id"}
    campaign = model(id=7)
    for number, field in enumerate(CAMPAIGN_FIELDS):
        if field not in ("status", "retry_incarnation", "failure_reason"):
            setattr(fields(campaign), field, number)
            assert getattr(campaign, names.get(field, field)) == number
        column = getattr(columns(model.__table__), field)
        assert column.key == names.get(field, field)
