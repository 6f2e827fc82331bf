"""Provider paths no other test takes: `@retry.provider_for` answers (none, a provider without
a key, a keyed pair reused, more keys than the cache holds: the least recently used closed,
a campaign loaded only when asked for), and a sandbox FaultRule's spellings and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from flask import Flask

from flask_campaign_retry.engine.provider_choice import CACHE_SIZE, provider_for_campaign
from flask_campaign_retry.providers.sandbox.rules import FaultPlan, FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp


class Plain:
    """A provider without ``close``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send_batch(self, message: Any, recipients: Any, ref: Any) -> Any:
        raise AssertionError("never sent in these tests")


class Closing(Plain):
    closed: list[str] = []

    def close(self) -> None:
        Closing.closed.append(self.name)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """What the next `provider_for` calls answer, in order."""
    answers: list[Any] = []

    def provider_for(campaign: Any) -> Any:
        assert campaign == "campaign row"
        return answers.pop(0)

    monkeypatch.setattr(hostapp.retry.hooks, "provider_for", provider_for)
    Closing.closed = []
    yield answers
    assert answers == []  # every answer was asked for


def test_no_choice_is_the_configured_provider(app: Flask, hook: list[Any]) -> None:
    state = get_state()
    hook.append(None)
    key, provider = provider_for_campaign(state, app, "campaign row")
    assert (key, provider) == ("mailgun", state.provider(app))


def test_a_provider_without_a_key_is_used_once_and_not_kept(app: Flask, hook: list[Any]) -> None:
    state = get_state()
    loads: list[str] = []
    hook.append(Plain("own"))

    def load() -> str:
        loads.append("loaded")
        return "campaign row"

    key, provider = provider_for_campaign(state, app, load)
    assert key == "own:uncached" and isinstance(provider, Plain)
    assert loads == ["loaded"]
    assert state.provider_cache == {}


def test_a_keyed_provider_is_reused_and_the_least_recently_used_closed_beyond_the_cache(
    app: Flask, hook: list[Any]
) -> None:
    state = get_state()
    first = Closing("k0")
    hook.append(("k0", first))
    assert provider_for_campaign(state, app, "campaign row") == ("k0", first)
    hook.append(("k0", Closing("k0-again")))
    assert provider_for_campaign(state, app, "campaign row") == ("k0", first)  # the kept one
    keys = [f"k{i}" for i in range(1, CACHE_SIZE + 1)]
    hook.append(("k1", Plain("k1")))  # no close(): evicted quietly
    for key in keys:
        if key != "k1":
            hook.append((key, Closing(key)))
    for key in keys:
        assert provider_for_campaign(state, app, "campaign row")[0] == key
    assert Closing.closed == ["k0"]
    assert "k0" not in state.provider_cache and len(state.provider_cache) == CACHE_SIZE
    hook.append(("k2", Closing("k2-new")))
    provider_for_campaign(state, app, "campaign row")  # k2 is now the most recent: k1 goes
    hook.append(("k-last", Closing("k-last")))
    provider_for_campaign(state, app, "campaign row")
    assert Closing.closed == ["k0"]  # k1 had no close()
    assert "k1" not in state.provider_cache and "k2" in state.provider_cache


def test_a_fault_rule_takes_any_collection_of_call_numbers() -> None:
    assert FaultRule(status=500, on_calls=[2, 3, 2]).on_calls == frozenset({2, 3})
    assert FaultRule(status=500, on_calls=frozenset({1})).on_calls == frozenset({1})


def test_a_fault_rule_refuses_a_negative_retry_after() -> None:
    with pytest.raises(ValueError) as raised:
        FaultRule(status=503, retry_after=-1)
    assert str(raised.value) == "FaultRule.retry_after must be >= 0 seconds."


def test_a_rule_that_accepts_then_hangs_answers_200() -> None:
    assert FaultRule(hang=1.0, accept_then_hang=True).effective_status == HTTPStatus.OK


def test_only_fault_rules_can_be_added() -> None:
    rules = FaultPlan()
    with pytest.raises(TypeError) as raised:
        rules.add({"status": 500})  # type: ignore[arg-type]
    assert str(raised.value) == "Expected a FaultRule, got dict."
