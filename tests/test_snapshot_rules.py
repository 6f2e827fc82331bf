"""The snapshot's own rules about the host's loader: whatever the loader raises, when called or
while its items are read, comes out as ``LoaderFailed`` naming the error's type, with the
loader's exception chained; the items before the failure are still yielded in order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_campaign_retry.engine.snapshot import LoaderFailed, _loaded


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
