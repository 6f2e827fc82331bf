"""The fake Mailgun server: documented answers, auth, limits, scripted faults and records."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_campaign_retry.providers.sandbox.rules import FaultPlan, FaultRule
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun
from flask_campaign_retry.testing.fake_mailgun_form import parse_form_pairs, parse_recipients


@pytest.fixture(scope="module")
def server() -> Iterator[FakeMailgun]:
    with FakeMailgun(domain="mg.example.com") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeMailgun) -> FakeMailgun:
    server.reset()
    server.latency = 0.0
    return server


def form(*to: str, **extra: Any) -> list[tuple[str, str]]:
    fields = [("from", "News <news@example.com>"), ("subject", "Hello"), ("text", "Hi")]
    fields += [("to", address) for address in to]
    fields += [(key.replace("__", ":").replace("_", "-"), value) for key, value in extra.items()]
    return fields


def post(
    fake: FakeMailgun,
    data: Any,
    *,
    auth: tuple[str, str] | None = None,
    domain: str | None = None,
    timeout: float = 5.0,
) -> requests.Response:
    return requests.post(
        f"{fake.url}/v3/{domain or fake.domain}/messages",
        data=data,
        auth=auth or ("api", fake.api_key),
        timeout=(2.0, timeout),
    )


# -- documented answers ----------------------------------------------------------------------


def test_success_answers_an_id_in_angle_brackets_and_records_it(fake: FakeMailgun) -> None:
    variables = {"a@example.org": {"rid": 1}, "b@example.org": {"rid": 2}}
    data = form(
        "a@example.org",
        "b@example.org",
        recipient_variables=json.dumps(variables),
        v__campaign="7",
        v__recipient="%recipient.rid%",
    )
    response = post(fake, data)
    assert response.status_code == 200
    answer = response.json()
    assert answer["message"] == "Queued. Thank you."
    assert answer["id"].startswith("<") and answer["id"].endswith("@mg.example.com>")
    accepted = {item.email: item for item in fake.accepted}
    assert set(accepted) == {"a@example.org", "b@example.org"}
    assert accepted["b@example.org"].message_id == answer["id"][1:-1]
    assert accepted["b@example.org"].user_variables == {"campaign": "7", "recipient": "2"}
    assert accepted["a@example.org"].recipient_variables == {"rid": 1}


def test_unknown_placeholders_are_left_visible(fake: FakeMailgun) -> None:
    post(fake, form("a@example.org", v__x="%recipient.missing%", recipient_variables="{}"))
    assert fake.accepted[0].user_variables == {"x": "%recipient.missing%"}


@pytest.mark.parametrize(
    "auth", [("api", "wrong-key"), ("API", "KEY"), ("someone", "KEY"), ("api", "")]
)
def test_bad_credentials_get_401_forbidden(fake: FakeMailgun, auth: tuple[str, str]) -> None:
    user, key = auth
    response = post(fake, form("a@example.org"), auth=(user, fake.api_key if key == "KEY" else key))
    assert (response.status_code, response.text) == (401, "Forbidden")
    assert fake.accepted_count("a@example.org") == 0


def test_missing_auth_gets_401(fake: FakeMailgun) -> None:
    response = requests.post(f"{fake.url}/v3/{fake.domain}/messages", data=form("a@x.org"))
    assert (response.status_code, response.text) == (401, "Forbidden")


def test_unknown_domain_gets_404(fake: FakeMailgun) -> None:
    response = post(fake, form("a@example.org"), domain="other.example.net")
    assert response.status_code == 404
    assert response.json() == {"message": "Domain not found: other.example.net"}


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("from", "'from' parameter is missing"),
        ("to", "'to' parameter is missing"),
        ("subject", "'subject' parameter is missing"),
        ("text", "Need at least one of 'text' or 'html' parameters specified"),
    ],
)
def test_missing_fields_get_400(fake: FakeMailgun, drop: str, message: str) -> None:
    data = [(k, v) for k, v in form("a@example.org") if k != drop]
    response = post(fake, data)
    assert (response.status_code, response.json()) == (400, {"message": message})
    assert fake.accepted == ()


def test_html_alone_is_enough(fake: FakeMailgun) -> None:
    data = [(k, v) for k, v in form("a@example.org") if k != "text"] + [("html", "<p>Hi</p>")]
    assert post(fake, data).status_code == 200


def test_recipient_limit_is_1000(fake: FakeMailgun) -> None:
    addresses = [f"user{i}@example.org" for i in range(1001)]
    too_many = post(fake, form(*addresses))
    assert too_many.status_code == 400
    assert too_many.json() == {"message": "Too many recipients, max is 1000"}
    assert post(fake, form(*addresses[:1000])).status_code == 200
    assert len(fake.accepted) == 1000


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '{"a@example.org": 5}'])
def test_invalid_recipient_variables_get_400(fake: FakeMailgun, raw: str) -> None:
    response = post(fake, form("a@example.org", recipient_variables=raw))
    assert response.status_code == 400
    assert response.json() == {"message": "'recipient-variables' parameter is not a valid JSON"}


@pytest.mark.parametrize("bad", ["not-an-address", "a@b", "two words@example.org", "x@-bad-.org"])
def test_one_invalid_address_fails_the_whole_call(fake: FakeMailgun, bad: str) -> None:
    response = post(fake, form("good@example.org", bad))
    assert response.status_code == 400
    assert response.json() == {
        "message": "'to' parameter is not a valid address. please check documentation"
    }
    assert fake.accepted_count("good@example.org") == 0


def test_display_names_and_comma_lists_are_accepted(fake: FakeMailgun) -> None:
    response = post(fake, form('"Doe, Jane" <jane@example.org>, bob@example.org'))
    assert response.status_code == 200
    assert fake.calls[-1].recipients == ("jane@example.org", "bob@example.org")


def test_oversized_request_gets_413(fake: FakeMailgun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flask_campaign_retry.testing.fake_mailgun.MAX_REQUEST_BYTES", 1000)
    response = post(fake, form("a@example.org", text="x" * 5000))
    assert response.status_code == 413
    assert fake.accepted == ()


def test_unknown_route_is_404_json(fake: FakeMailgun) -> None:
    response = requests.get(f"{fake.url}/v3/{fake.domain}/nothing", timeout=2)
    assert response.status_code == 404
    assert "message" in response.json()


# -- scripted faults -------------------------------------------------------------------------


def test_fault_on_a_call_number_fires_only_there(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=500, on_calls=frozenset({2})))
    statuses = [post(fake, form(f"u{i}@example.org")).status_code for i in range(3)]
    assert statuses == [200, 500, 200]
    assert fake.accepted_count("u1@example.org") == 0
    assert fake.calls[1].fault is not None and fake.calls[1].fault.status == 500


def test_times_limits_how_often_a_rule_fires(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=503, times=2))
    statuses = [post(fake, form("a@example.org")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert fake.accepted_count("a@example.org") == 1


def test_match_fires_only_for_calls_with_a_matching_address(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=502, match=r"@blocked\.test$"))
    assert post(fake, form("a@example.org")).status_code == 200
    assert post(fake, form("a@example.org", "x@blocked.test")).status_code == 502


def test_reject_addresses_gives_mailguns_invalid_address_400(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(reject_addresses=True, match="^bounce"))
    response = post(fake, form("ok@example.org", "bounce@example.org"))
    assert response.status_code == 400
    assert "'to' parameter is not a valid address" in response.json()["message"]


def test_429_with_resume_time_and_retry_after(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=429, resume_in=120, retry_after=30))
    before = datetime.now(UTC)
    response = post(fake, form("a@example.org"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    message = response.json()["message"]
    assert message.startswith("Domain mg.example.com is not allowed to send: request limit")
    resume = parsedate_to_datetime(message.split("try again after ")[1])
    assert before + timedelta(seconds=118) <= resume <= before + timedelta(seconds=122)


def test_scripted_401_uses_the_plain_forbidden_body(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=401))
    response = post(fake, form("a@example.org"))
    assert (response.status_code, response.text) == (401, "Forbidden")


def test_custom_message_replaces_the_canonical_one(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=403, message="IP address rejected"))
    assert post(fake, form("a@example.org")).json() == {"message": "IP address rejected"}


def test_hang_times_out_the_client_and_accepts_nothing(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(hang=1.5))
    with pytest.raises(requests.ReadTimeout):
        post(fake, form("a@example.org"), timeout=0.3)
    assert fake.request_count == 1
    assert fake.accepted_count("a@example.org") == 0


def test_accept_then_hang_accepts_although_the_client_times_out(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(accept_then_hang=True, hang=1.5))
    with pytest.raises(requests.ReadTimeout):
        post(fake, form("a@example.org"), timeout=0.3)
    assert fake.accepted_count("a@example.org") == 1
    assert fake.calls[0].status == 200


def test_stop_wakes_hung_requests_and_closes_the_port() -> None:
    fake = FakeMailgun().start()
    fake.add_fault(FaultRule(accept_then_hang=True, hang=60))
    url = fake.url
    with pytest.raises(requests.ReadTimeout):
        post(fake, form("a@example.org"), timeout=0.2)
    started = time.perf_counter()
    fake.stop()
    assert time.perf_counter() - started < 2
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{url}/v3/x/messages", timeout=1)
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url


def test_clear_faults(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=500))
    fake.clear_faults()
    assert post(fake, form("a@example.org")).status_code == 200


def test_latency_delays_answers(fake: FakeMailgun) -> None:
    fake.latency = 0.2
    started = time.perf_counter()
    post(fake, form("a@example.org"))
    assert time.perf_counter() - started >= 0.2
    assert fake.handling_seconds < 0.2  # sleeping is not counted as handling


# -- records ---------------------------------------------------------------------------------


def test_calls_record_every_request_with_its_form(fake: FakeMailgun) -> None:
    post(fake, form("a@example.org"), auth=("api", "wrong"))
    post(fake, [*form("a@example.org", "b@example.org", o__tag="t1"), ("o:tag", "t2")])
    first, second = fake.calls
    assert (first.number, first.status, second.number, second.status) == (1, 401, 2, 200)
    assert second.form["to"] == ("a@example.org", "b@example.org")
    assert second.form["o:tag"] == ("t1", "t2")
    assert second.message_id is not None
    assert fake.request_count == 2


def test_accepted_emails_counts_case_insensitively(fake: FakeMailgun) -> None:
    post(fake, form("A@Example.org"))
    post(fake, form("a@example.org", "b@example.org"))
    assert fake.accepted_emails() == {"a@example.org": 2, "b@example.org": 1}
    assert fake.accepted_count("A@EXAMPLE.ORG") == 2


def test_reset_forgets_records_and_faults_and_renumbers(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=500, on_calls=frozenset({2})))
    post(fake, form("a@example.org"))
    fake.reset()
    assert (fake.calls, fake.accepted, fake.request_count) == ((), (), 0)
    assert [post(fake, form("a@example.org")).status_code for _ in range(2)] == [200, 200]
    assert [call.number for call in fake.calls] == [1, 2]


def test_records_are_consistent_under_concurrent_calls(fake: FakeMailgun) -> None:
    fake.add_fault(FaultRule(status=500, on_calls=frozenset({7, 8, 9})))
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with requests.Session() as session:
                for i in range(10):
                    session.post(
                        f"{fake.url}/v3/{fake.domain}/messages",
                        data=form(f"w{n}-{i}@example.org", "shared@example.org"),
                        auth=("api", fake.api_key),
                        timeout=5,
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert fake.request_count == 120
    assert sorted(call.number for call in fake.calls) == list(range(1, 121))
    assert sum(call.status == 500 for call in fake.calls) == 3
    assert fake.accepted_count("shared@example.org") == 117
    assert len(fake.accepted) == 2 * 117
    assert sum(fake.accepted_emails().values()) == 2 * 117


def test_100_calls_of_1000_recipients_are_all_recorded(fake: FakeMailgun) -> None:
    """The fake keeps up with full batches; how fast it is is measured by the benchmarks
    (target 4's provider-only floor), not asserted here: a timed test fails under load."""
    addresses = [f"user{i}@example.org" for i in range(1000)]
    variables = {address: {"campaign_retry_rid": i} for i, address in enumerate(addresses)}
    body = urlencode(form(*addresses, recipient_variables=json.dumps(variables)))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with requests.Session() as session:
        for _ in range(100):
            response = session.post(
                f"{fake.url}/v3/{fake.domain}/messages",
                data=body,
                headers=headers,
                auth=("api", fake.api_key),
                timeout=5,
            )
            assert response.status_code == 200
    assert fake.accepted_count("user999@example.org") == 100
    assert fake.accepted_count("user0@example.org") == 100
    assert fake.request_count == 100


# -- form parsing and rules ------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.text(), st.text()), max_size=8))
def test_form_parser_matches_the_standard_one(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs)
    assert parse_form_pairs(body.encode()) == parse_qsl(body, keep_blank_values=True)
    assert parse_form_pairs(body.encode()) == pairs


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab=&%+0Aaf9\r\n é"), max_size=30))
def test_form_parser_matches_the_standard_one_on_odd_bodies(body: str) -> None:
    expected = parse_qsl(body, keep_blank_values=True, errors="replace")
    assert parse_form_pairs(body.encode()) == expected


def test_an_address_with_a_line_break_is_invalid() -> None:
    assert parse_recipients(["a@example.org\nb@example.org"])[1] is False
    assert parse_recipients(["a@example.org", "b@example.org"])[1] is True


def test_rule_from_dict_validates_keys_and_converts_lists() -> None:
    rule = FaultRule.from_dict({"status": 429, "on_calls": [1, 3], "resume_in": 30})
    assert rule.on_calls == frozenset({1, 3})
    with pytest.raises(ValueError, match=r"Unknown fault rule key\(s\): colour, staus"):
        FaultRule.from_dict({"staus": 500, "colour": "red"})


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"status": 200},
        {"status": "500"},
        {"status": 500, "times": 0},
        {"status": 500, "on_calls": [0]},
        {"status": 500, "resume_in": 10},
        {"status": 500, "match": "("},
        {"reject_addresses": True},
        {"accept_then_hang": True},
        {"hang": 0},
        {"status": 500, "on_calls": "1"},
    ],
)
def test_invalid_rules_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultRule.from_dict(values)


def test_plan_fires_the_first_applicable_rule_once_per_call() -> None:
    first = FaultRule(status=500, times=1)
    second = FaultRule(status=503)
    plan = FaultPlan([first, second])
    assert [plan.pick(n, ["a@x.org"]) for n in (1, 2, 3)] == [first, second, second]
