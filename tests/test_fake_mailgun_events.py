"""The fake Mailgun's Events API: events of accepted sends, injected outcomes, Mailgun's
filters, path-token paging that ends with an empty page, scripted failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from flask_campaign_retry.testing.fake_mailgun import FakeMailgun


@pytest.fixture(scope="module")
def server() -> Iterator[FakeMailgun]:
    with FakeMailgun(domain="mg.example.com") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeMailgun) -> FakeMailgun:
    server.reset()
    return server


def send(fake: FakeMailgun, batch: int, *addresses: str) -> str:
    """One accepted call tagged like MailgunProvider tags a batch; returns its message id."""
    variables = {a: {"campaign_retry_rid": 100 * batch + i} for i, a in enumerate(addresses)}
    data = [
        ("from", "news@example.com"),
        ("subject", "Hi"),
        ("text", "Hi"),
        ("recipient-variables", json.dumps(variables)),
        ("v:campaign_retry_campaign", "7"),
        ("v:campaign_retry_batch", str(batch)),
        ("v:campaign_retry_recipient", "%recipient.campaign_retry_rid%"),
    ] + [("to", address) for address in addresses]
    response = requests.post(
        f"{fake.url}/v3/{fake.domain}/messages",
        data=data,
        auth=("api", fake.api_key),
        timeout=5,
    )
    assert response.status_code == 200
    return str(response.json()["id"]).strip("<>")


def query(
    fake: FakeMailgun, url: str | None = None, *, auth: Any = None, **params: Any
) -> requests.Response:
    return requests.get(
        url or f"{fake.url}/v3/{fake.domain}/events",
        params=params or None,
        auth=auth or ("api", fake.api_key),
        timeout=5,
    )


def items(fake: FakeMailgun, **params: Any) -> list[dict[str, Any]]:
    response = query(fake, **params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def test_accepted_sends_are_accepted_events_with_expanded_variables(fake: FakeMailgun) -> None:
    message_id = send(fake, 3, "a@example.org", "b@example.org")
    events = items(fake, ascending="yes")
    assert [e["recipient"] for e in events] == ["a@example.org", "b@example.org"]
    first = events[0]
    assert first["event"] == "accepted"
    assert first["message"]["headers"]["message-id"] == message_id
    assert first["user-variables"] == {
        "campaign_retry_campaign": "7",
        "campaign_retry_batch": "3",
        "campaign_retry_recipient": "300",
    }
    assert isinstance(first["timestamp"], float) and abs(first["timestamp"] - time.time()) < 60
    assert len({e["id"] for e in events}) == 2
    assert items(fake, ascending="yes") == events  # ids and timestamps are stable


def test_filters_user_variables_event_recipient_and_message_id(fake: FakeMailgun) -> None:
    send(fake, 1, "a@example.org", "b@example.org")
    second = send(fake, 2, "c@example.org")
    fake.events.deliver("a@example.org")
    fake.events.fail("b@example.org", severity="temporary", reason="generic")

    batch_one = items(fake, **{"user-variables": '{"campaign_retry_batch": "1"}'})
    assert {e["recipient"] for e in batch_one} == {"a@example.org", "b@example.org"}
    assert len(batch_one) == 4  # two accepted, one delivered, one failed
    both = items(fake, event="delivered OR failed")
    assert sorted(e["event"] for e in both) == ["delivered", "failed"]
    assert [e["event"] for e in items(fake, event="failed", severity="temporary")] == ["failed"]
    assert len(items(fake, recipient="A@EXAMPLE.ORG")) == 2
    by_id = items(fake, **{"message-id": f"<{second}>"})
    assert [e["recipient"] for e in by_id] == ["c@example.org"]
    mismatch = items(fake, **{"user-variables": '{"campaign_retry_batch": "1", "x": "y"}'})
    assert mismatch == []


def test_begin_end_and_order(fake: FakeMailgun) -> None:
    send(fake, 1, "a@example.org")
    fake.events.deliver("a@example.org", timestamp=time.time() + 100)
    newest_first = items(fake)
    assert [e["event"] for e in newest_first] == ["delivered", "accepted"]
    later = datetime.fromtimestamp(time.time() + 50, UTC)
    assert [e["event"] for e in items(fake, begin=format_datetime(later, usegmt=True))] == [
        "delivered"
    ]
    assert [e["event"] for e in items(fake, end=str(time.time() + 50))] == ["accepted"]


def test_paging_follows_path_tokens_until_an_empty_page(fake: FakeMailgun) -> None:
    addresses = [f"u{i}@example.org" for i in range(7)]
    send(fake, 5, *addresses)
    response = query(fake, ascending="yes", limit=3)
    seen: list[str] = []
    pages = 0
    while True:
        body = response.json()
        pages += 1
        next_url = body["paging"]["next"]
        assert next_url.startswith(f"{fake.url}/v3/{fake.domain}/events/")
        assert set(body["paging"]) == {"first", "last", "next", "previous"}
        if not body["items"]:
            break
        seen += [e["recipient"] for e in body["items"]]
        response = query(fake, next_url)
        assert response.status_code == 200
    assert seen == addresses
    assert pages == 4  # 3 + 3 + 1, then the empty page
    assert fake.events.request_count == 4


def test_refusals_as_mailgun(fake: FakeMailgun) -> None:
    assert query(fake, limit=301).status_code == 400
    assert query(fake, limit="ten").status_code == 400
    assert query(fake, **{"user-variables": "not json"}).status_code == 400
    assert query(fake, begin="yesterday-ish").status_code == 400
    assert query(fake, ascending="maybe").status_code == 400
    assert query(fake, f"{fake.url}/v3/{fake.domain}/events/garbage!").status_code == 400
    wrong_key = query(fake, auth=("api", "nope"))
    assert (wrong_key.status_code, wrong_key.text) == (401, "Forbidden")
    assert query(fake, f"{fake.url}/v3/other.example/events").status_code == 404


def test_the_api_can_be_broken_for_a_number_of_queries(fake: FakeMailgun) -> None:
    fake.events.break_api(500, times=2)
    assert [query(fake).status_code for _ in range(3)] == [500, 500, 200]
    fake.events.break_api(503)
    assert [query(fake).status_code for _ in range(2)] == [503, 503]
    fake.events.heal_api()
    assert query(fake).status_code == 200
    with pytest.raises(ValueError):
        fake.events.break_api(200)


def test_outcome_events_copy_the_acceptance(fake: FakeMailgun) -> None:
    message_id = send(fake, 9, "a@example.org")
    delivered = fake.events.deliver("a@example.org")
    failed = fake.events.fail("a@example.org", reason="old", severity="temporary", code=0)
    for event in (delivered, failed):
        assert event["message"]["headers"]["message-id"] == message_id
        assert event["user-variables"]["campaign_retry_recipient"] == "900"
    assert failed["reason"] == "old" and failed["delivery-status"]["code"] == 0
    assert fake.events.add({"event": "opened", "recipient": "a@example.org"})["id"]
    assert len(fake.events.all()) == 4
    with pytest.raises(ValueError, match="never accepted"):
        fake.events.deliver("nobody@example.org")
    fake.reset()
    assert fake.events.all() == [] and fake.events.request_count == 0


def test_events_show_only_after_the_lag_and_vanish_after_the_retention(
    fake: FakeMailgun,
) -> None:
    send(fake, 1, "a@example.org")
    [accepted] = fake.events.all()
    stamp = float(accepted["timestamp"])
    delivered = fake.events.deliver("a@example.org", timestamp=stamp + 10)
    fake.events.set_visibility(lag=5.0, retention=100.0)
    ids = lambda now: [item["id"] for item in fake.events.visible(now)]  # noqa: E731
    assert ids(stamp + 4.9) == []
    assert ids(stamp + 5.0) == [accepted["id"]]
    assert ids(stamp + 15.0) == [accepted["id"], delivered["id"]]
    assert ids(stamp + 100.5) == [delivered["id"]]  # the acceptance left the log
    assert ids(stamp + 111.0) == []
    assert [item["id"] for item in fake.events.all()] == [accepted["id"], delivered["id"]]


def test_the_events_api_answers_with_the_visible_events_only(fake: FakeMailgun) -> None:
    send(fake, 1, "a@example.org")
    fake.events.set_visibility(lag=3600.0)
    assert query(fake).json()["items"] == []
    fake.events.set_visibility(lag=0.0)
    assert [item["recipient"] for item in query(fake).json()["items"]] == ["a@example.org"]
    fake.events.set_visibility(lag=3600.0)
    fake.reset()  # reset forgets the lag too
    send(fake, 2, "b@example.org")
    assert [item["recipient"] for item in query(fake).json()["items"]] == ["b@example.org"]


@pytest.mark.parametrize(("lag", "retention"), [(-1.0, None), (5.0, 5.0), (5.0, 1.0)])
def test_impossible_visibility_settings_are_refused(
    fake: FakeMailgun, lag: float, retention: float | None
) -> None:
    with pytest.raises(ValueError, match="lag must be >= 0"):
        fake.events.set_visibility(lag=lag, retention=retention)
