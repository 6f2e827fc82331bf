"""The fast path of address validation never accepts what email-validator refuses."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flask_campaign_retry.engine.addresses import address_problem, plainly_valid

_CHARS = st.sampled_from([*"abcz09AZ._+-@!#$%&'*/=?^`{|}~\"() ,;:[]\\é", "xn--", ".."])


def _validator_accepts(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.emails(), st.lists(_CHARS, max_size=40).map("".join)))
@example("a" * 65 + "@example.com")
@example("user@example.test")
@example("user@-bad.example.com")
@example(".lead@example.com")
@example("trail.@example.com")
@example("a..b@example.com")
@example("user@example.c0m")
@example("user@" + "a" * 64 + ".com")
def test_the_fast_path_accepts_only_what_email_validator_accepts(email: str) -> None:
    if plainly_valid(email):
        assert _validator_accepts(email), email
    assert (address_problem(email) is None) == _validator_accepts(email)


def test_ordinary_addresses_take_the_fast_path_and_bad_ones_get_a_reason() -> None:
    assert plainly_valid("first.last+tag@mail.example.com")
    assert not plainly_valid("Ünïcode@example.com")  # decided by email-validator
    assert address_problem("Ünïcode@example.com") is None
    problem = address_problem("two@@example.com")
    assert problem is not None and problem.startswith("invalid address")
