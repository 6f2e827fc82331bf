"""The snapshot's own rules about the host's loader: whatever the loader raises, when called or
while its items are read, comes out as ``LoaderFailed`` naming the error's type, with the
loader's exception chained; the items before the failure are still yielded in order. The row of
one loaded recipient, exactly, for a valid and an invalid address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_campaign_retry.engine.snapshot import LoaderFailed, _loaded, recipient_row
from flask_campaign_retry.statuses import FailureKind, RecipientStatus


class SubscriberServiceDown(Exception):
    pass


def test_a_loader_that_raises_when_called_is_loader_failed_naming_the_type() -> None:
    """The call itself failing is the loader's failure, with its cause chained."""
    cause = SubscriberServiceDown("no route to host")

    def loader(campaign: Any) -> Iterator[str]:
        raise cause

    with pytest.raises(LoaderFailed) as caught:
        next(_loaded(loader, object()))
    assert str(caught.value) == "the recipients_loader raised SubscriberServiceDown"
    assert caught.value.__cause__ is cause


def test_a_loader_that_raises_while_iterated_keeps_the_items_before_and_names_the_type() -> None:
    """Items read before the failure come out in order; the failure is the loader's."""
    cause = KeyError("page 2")

    def loader(campaign: Any) -> Iterator[str]:
        yield "ann@example.com"
        yield "bea@example.com"
        raise cause

    got: list[str] = []
    with pytest.raises(LoaderFailed) as caught:
        for item in _loaded(loader, object()):
            got.append(item)
    assert got == ["ann@example.com", "bea@example.com"]
    assert str(caught.value) == "the recipients_loader raised KeyError"
    assert caught.value.__cause__ is cause


def test_the_campaign_is_what_the_loader_receives_and_an_empty_list_ends_cleanly() -> None:
    """The loader gets the campaign being prepared; an empty list is no failure."""
    seen: list[Any] = []
    campaign = object()

    def loader(c: Any) -> list[str]:
        seen.append(c)
        return []

    assert list(_loaded(loader, campaign)) == []
    assert seen == [campaign]


def test_a_valid_address_makes_a_pending_row_keyed_by_its_case_folded_form() -> None:
    """The address is kept as given, the key folded, the variables kept; nothing failed."""
    row = recipient_row(7, "inc-1", "Ann@Example.COM", {"first_name": "Ann"}, True)
    assert row == {
        "campaign_id": 7,
        "email": "Ann@Example.COM",
        "email_key": "ann@example.com",
        "incarnation": "inc-1",
        "variables": {"first_name": "Ann"},
        "status": RecipientStatus.PENDING,
        "failure_kind": None,
        "error_message": None,
    }
    assert recipient_row(7, "inc-1", "Ann@Example.COM", {}, False)["email_key"] == (
        "Ann@Example.COM"
    )
    assert recipient_row(7, "inc-1", "ann@example.com", {}, True)["variables"] is None


@pytest.mark.parametrize("casefold", [True, False])
def test_an_invalid_address_makes_a_failed_row_deduplicated_like_any_other(
    casefold: bool,
) -> None:
    """An invalid address gets a FAILED permanent row, stored safely, without variables, and
    keyed the same way as valid ones, so two spellings of it count once when folding is on."""
    row = recipient_row(7, "inc-1", "NOT An\x00Address", {"first_name": "X"}, casefold)
    stored = "NOT An\\u0000Address"
    assert row == {
        "campaign_id": 7,
        "email": stored,
        "email_key": stored.casefold() if casefold else stored,
        "incarnation": "inc-1",
        "variables": None,
        "status": RecipientStatus.FAILED,
        "failure_kind": FailureKind.PERMANENT.value,
        "error_message": row["error_message"],
    }
    assert row["error_message"].startswith("invalid address")


def test_a_long_address_problem_is_cut_to_200_characters() -> None:
    """A domain full of invalid characters gets a long explanation: the row keeps its first
    200 characters."""
    junk = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "@.")
    row = recipient_row(7, "inc-1", f"a@{junk}.com", None, True)
    message = row["error_message"]
    assert len(message) == 200
    assert message.startswith("invalid address: The part after the @-sign contains invalid ")
