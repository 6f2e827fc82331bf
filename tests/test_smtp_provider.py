"""The SMTP provider on its own (settings, validation, the transaction modes) against the sink,
and the engine's handling of per-recipient results."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_campaign_retry.config import DEFAULTS, load_settings
from flask_campaign_retry.engine.reason_causes import cause_of, grouped_by_cause
from flask_campaign_retry.engine.submission import UNREPORTED, split_results, submit
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.providers.base import (
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    ProviderError,
    RecipientOutcome,
    RecipientResult,
    RecipientResults,
)
from flask_campaign_retry.providers.loader import load_provider
from flask_campaign_retry.providers.smtp import SMTPProvider, SMTPSettings
from flask_campaign_retry.providers.smtp.compose import Composer
from flask_campaign_retry.providers.smtp.template import TemplateRenderer
from flask_campaign_retry.statuses import FailureKind
from flask_campaign_retry.testing.smtp_faults import SMTPFault
from flask_campaign_retry.testing.smtp_sink import SMTPSink

REF = BatchRef(campaign_id=7, attempt_id=1, batch_id=3)
PLAIN = OutgoingMessage(subject="Weekly news", from_address="News <news@example.com>", text="Hi")
PEOPLE = [BatchRecipient(i, f"p{i}@example.com", {"name": f"P{i}"}) for i in range(1, 6)]


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def sink(request: pytest.FixtureRequest) -> Iterator[SMTPSink]:
    with SMTPSink(pipelining=request.param) as running:
        yield running


def provider_for(sink: SMTPSink, **extra: object) -> SMTPProvider:
    return SMTPProvider.from_config({**sink.config(), "CAMPAIGN_RETRY_SMTP_TIMEOUT": 1, **extra})


def test_reads_flask_mail_keys_and_the_smtp_overrides_win() -> None:
    config = {
        "MAIL_SERVER": "mail.example.com",
        "MAIL_PORT": 587,
        "MAIL_USE_TLS": True,
        "MAIL_USERNAME": "ann",
        "MAIL_PASSWORD": "pw-one",
        "MAIL_DEFAULT_SENDER": ("News", "news@example.com"),
        "CAMPAIGN_RETRY_SMTP_SERVER": "relay.example.com",
        "CAMPAIGN_RETRY_SMTP_PASSWORD": "pw-two",
    }
    settings = SMTPSettings.from_config(config)
    assert (settings.server, settings.effective_port, settings.use_tls) == (
        "relay.example.com",
        587,
        True,
    )
    assert (settings.username, settings.password) == ("ann", "pw-two")
    assert settings.envelope_sender == "news@example.com"
    provider = load_provider("smtp", config)
    assert isinstance(provider, SMTPProvider)
    for text in (repr(settings), repr(provider), provider.cache_key):
        assert "pw-two" not in text and "pw-one" not in text


def test_the_cache_key_changes_with_the_password_without_showing_it() -> None:
    one = SMTPSettings(server="h", username="u", password="a")
    two = SMTPSettings(server="h", username="u", password="b")
    assert one.cache_key != two.cache_key


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"MAIL_USE_TLS": True, "MAIL_USE_SSL": True}, "set only one"),
        ({"MAIL_USERNAME": "ann"}, "needs both MAIL_USERNAME and MAIL_PASSWORD"),
        ({"MAIL_PORT": 70000}, "1-65535"),
        ({"MAIL_USE_TLS": "yes"}, "must be True or False"),
        ({"CAMPAIGN_RETRY_SMTP_TIMEOUT": 0}, "CAMPAIGN_RETRY_SMTP_TIMEOUT"),
        ({"MAIL_SERVER": ""}, r"SMTP server \(MAIL_SERVER\) must be a host name"),
        ({"MAIL_DEFAULT_SENDER": "Newsletter"}, "'Newsletter' has no address"),
        ({"MAIL_USERNAME": "ann\r\nRCPT", "MAIL_PASSWORD": "p"}, "username contains a line"),
        ({"CAMPAIGN_RETRY_SMTP_SHARED_TO": "a\0b"}, "shared_to contains a line break or NUL"),
    ],
)
def test_bad_smtp_settings_are_refused_at_init(extra: dict[str, object], words: str) -> None:
    config = {**DEFAULTS, "CAMPAIGN_RETRY_PROVIDER": "smtp", **extra}
    with pytest.raises(ConfigurationError, match=words):
        load_settings(config)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (
            OutgoingMessage(subject="a\r\nBcc: x@y.z", from_address="n@example.com", text="t"),
            "subject",
        ),
        (
            OutgoingMessage(
                subject="s", from_address="n@example.com", text="t", headers={"To": "x"}
            ),
            "headers['To']",
        ),
        (
            OutgoingMessage(
                subject="s", from_address="n@example.com", text="t", headers={"X-A": "1\n2"}
            ),
            "headers['X-A']",
        ),
        (OutgoingMessage(subject="s", from_address="nobody", text="t"), "from_address"),
        (
            OutgoingMessage(subject="s", from_address="n@example.com", text="t", tags=["a\0"]),
            "tags[0]",
        ),
    ],
)
def test_validate_names_the_field_it_cannot_carry(message: OutgoingMessage, field: str) -> None:
    provider = SMTPProvider(SMTPSettings())
    with pytest.raises(ValueError, match=field.replace("[", r"\[")):
        provider.validate(message)
    with pytest.raises(ProviderError) as caught:  # and nothing is sent with it
        provider.send_batch(message, PEOPLE, REF)
    assert caught.value.kind is FailureKind.FATAL


def test_identical_content_goes_as_one_transaction_with_refusals_named(sink: SMTPSink) -> None:
    sink.add_fault(SMTPFault("rcpt", code=552, match="p2@", message="5.2.2 mailbox full"))
    sink.add_fault(SMTPFault("rcpt", code=451, match="p4@"))
    provider = provider_for(sink, CAMPAIGN_RETRY_SMTP_SHARED_TO="undisclosed-recipients:;")
    result = provider.send_batch(PLAIN, PEOPLE, REF)
    assert isinstance(result, RecipientResults) and result.rest is None
    assert provider.connection.get().has_extn("pipelining") is sink.pipelining
    outcomes = {r.recipient_id: (r.outcome, r.code) for r in result.results}
    assert outcomes == {
        1: (RecipientOutcome.ACCEPTED, 250),
        2: (RecipientOutcome.REFUSED, 552),
        3: (RecipientOutcome.ACCEPTED, 250),
        4: (RecipientOutcome.DEFERRED, 451),
        5: (RecipientOutcome.ACCEPTED, 250),
    }
    [message] = sink.messages
    assert message.rcpt_tos == ("p1@example.com", "p3@example.com", "p5@example.com")
    assert message.parsed["To"] == "undisclosed-recipients:;"
    ids = {r.message_id for r in result.results if r.outcome is RecipientOutcome.ACCEPTED}
    assert ids == {message.parsed["Message-ID"].strip("<>")}


def test_a_placeholder_makes_even_a_shared_to_message_personal(sink: SMTPSink) -> None:
    provider = provider_for(sink, CAMPAIGN_RETRY_SMTP_SHARED_TO="list@example.com")
    personal = OutgoingMessage(
        subject="Hi %recipient.name%", from_address="n@example.com", text="x"
    )
    provider.send_batch(personal, PEOPLE[:2], REF)
    assert [m.parsed["Subject"] for m in sink.messages] == ["Hi P1", "Hi P2"]
    assert [m.parsed["To"] for m in sink.messages] == ["p1@example.com", "p2@example.com"]


def test_a_5xx_to_mail_from_stops_the_campaign_with_what_to_fix(sink: SMTPSink) -> None:
    sink.add_fault(SMTPFault("mail", code=553, message="5.7.1 sender not owned by user"))
    with pytest.raises(ProviderError) as caught:
        provider_for(sink).send_batch(PLAIN, PEOPLE, REF)
    error = caught.value
    assert (error.kind, error.code) == (FailureKind.FATAL, 553)
    assert "check the From address or MAIL_DEFAULT_SENDER" in error.message
    assert sink.messages == []


def test_a_server_that_wants_a_login_and_gets_none_is_fatal() -> None:
    with SMTPSink(credentials=("u", "p")) as sink:
        config = {**sink.config(), "MAIL_USERNAME": None, "MAIL_PASSWORD": None}
        with pytest.raises(ProviderError) as caught:
            SMTPProvider.from_config(config).send_batch(PLAIN, PEOPLE, REF)
    assert (caught.value.kind, caught.value.code) == (FailureKind.FATAL, 530)


def test_an_unreachable_server_is_temporary_and_nothing_was_sent() -> None:
    provider = SMTPProvider(SMTPSettings(server="127.0.0.1", port=1, timeout=1))
    with pytest.raises(ProviderError) as caught:
        provider.send_batch(PLAIN, PEOPLE, REF)
    assert caught.value.kind is FailureKind.TRANSIENT


def test_unnamed_recipients_are_uncertain_and_repeats_are_ignored() -> None:
    results = RecipientResults(
        [
            RecipientResult(1, RecipientOutcome.ACCEPTED, 250, "ok", "m1"),
            RecipientResult(1, RecipientOutcome.REFUSED, 550, "late word"),
            RecipientResult(99, RecipientOutcome.REFUSED, 550, "not in the call"),
            RecipientResult(2, RecipientOutcome.REFUSED, 550, "gone"),
        ]
    )
    groups = split_results(PEOPLE[:4], results)
    by_ids = {tuple(r.id for r in g.recipients): g for g in groups}
    assert by_ids[(1,)].error is None and by_ids[(1,)].message_id == "m1"
    assert by_ids[(2,)].error is not None and by_ids[(2,)].error.kind is FailureKind.PERMANENT
    rest = by_ids[(3, 4)].error
    assert rest is not None and (rest.kind, rest.message) == (FailureKind.UNCERTAIN, UNREPORTED)


def test_a_fatal_rest_halts_even_when_every_recipient_was_named() -> None:
    fatal = ProviderError(FailureKind.FATAL, "account suspended", code=554)

    class Halting:
        name = "halting"

        def send_batch(
            self, message: OutgoingMessage, recipients: object, ref: BatchRef
        ) -> RecipientResults:
            return RecipientResults(
                [RecipientResult(p.id, RecipientOutcome.ACCEPTED) for p in PEOPLE], rest=fatal
            )

    result = submit(Halting(), PLAIN, PEOPLE, REF)
    assert result.fatal is fatal and result.calls == 1 and result.unsubmitted == []


ADDRESS = st.from_regex(r"[a-z0-9._]{1,12}@[a-z0-9]{1,10}\.(com|org|test)", fullmatch=True)


@given(st.lists(ADDRESS, min_size=2, max_size=8, unique=True))
def test_replies_that_differ_only_by_address_are_one_cause(addresses: list[str]) -> None:
    rows = [
        ("permanent", f"SMTP 550 5.1.1 <{a}>: Recipient address rejected", 1) for a in addresses
    ]
    rows.append(("transient", "SMTP 451 4.3.0 try later", 2))
    assert (
        grouped_by_cause(rows)
        == [
            ("permanent", "SMTP 550 5.1.1 Recipient address rejected", len(addresses)),
            ("transient", "SMTP 451 4.3.0 try later", 2),
        ]
        or len(addresses) == 2
    )


def test_message_and_queue_ids_are_taken_out() -> None:
    assert (
        cause_of("SMTP 451 4.7.1 queue 4F2A1B3C9D7E deferred")
        == "SMTP 451 4.7.1 queue <id> deferred"
    )
    assert cause_of("HTTP 500 from Mailgun: Internal Server Error") == (
        "HTTP 500 from Mailgun: Internal Server Error"
    )
    assert cause_of(None) is None


VALUES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.from_regex(r"[A-Za-z0-9 ._'+-]{0,30}", fullmatch=True)


@given(
    first=VALUES,
    last=VALUES,
    to=st.sampled_from(["ann@example.com", "o'brien+x@mail.example.org", 'bad"q@example.com']),
)
def test_the_template_fast_path_gives_the_same_bytes_as_the_full_render(
    first: str, last: str, to: str
) -> None:
    message = OutgoingMessage(
        subject="Hello %recipient.first% %recipient.missing%",
        from_address="News <news@example.com>",
        html="<p>Dear %recipient.first% %recipient.last%,</p>\n.line\n",
        text="Dear %recipient.first%",
        headers={"X-Who": "%recipient.last%"},
    )
    composer = Composer(message, REF, None)
    template = TemplateRenderer(composer)
    assert template.template is not None  # this message keeps its placeholders intact
    variables = {"first": first, "last": last}
    assert template.render(to, variables, "id-1@example.com") == composer.render(
        to, variables, "id-1@example.com", template.date
    )


def test_a_placeholder_in_an_address_header_skips_the_fast_path() -> None:
    message = OutgoingMessage(
        subject="Hi", from_address="%recipient.name% <news@example.com>", text="x"
    )
    composer = Composer(message, REF, None)
    assert TemplateRenderer(composer).template is None


def test_a_body_that_needs_encoding_skips_the_fast_path() -> None:
    message = OutgoingMessage(
        subject="Hi", from_address="n@example.com", text="Grüße %recipient.x% " + "é" * 2000
    )
    composer = Composer(message, REF, None)
    template = TemplateRenderer(composer)
    assert template.template is None
    assert template.render("a@example.com", {"x": "1"}, "m@x") == composer.render(
        "a@example.com", {"x": "1"}, "m@x", template.date
    )


def test_plain_values_take_the_fast_path_and_others_the_full_render(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = OutgoingMessage(
        subject="Hello %recipient.first%",
        from_address="n@example.com",
        html="<p>%recipient.first%</p>",
    )
    composer = Composer(message, REF, None)
    template = TemplateRenderer(composer)
    full: list[str] = []
    render = composer.render
    monkeypatch.setattr(composer, "render", lambda to, *rest: full.append(to) or render(to, *rest))
    template.render("ann@example.com", {"first": "Ann Lee"}, "m1@x")
    template.render("bob@example.com", {"first": "Bob\r\nBcc: spy@example.net"}, "m2@x")
    template.render("cy@example.com", {"first": "Chloé"}, "m3@x")
    assert full == ["bob@example.com", "cy@example.com"]


def test_421_at_one_rcpt_leaves_that_one_and_the_rest_unsent(sink: SMTPSink) -> None:
    sink.add_fault(SMTPFault("rcpt", code=550, match="p1@"))
    sink.add_fault(SMTPFault("rcpt", code=421, match="p3@"))
    provider = provider_for(sink, CAMPAIGN_RETRY_SMTP_SHARED_TO="undisclosed-recipients:;")
    result = provider.send_batch(PLAIN, PEOPLE, REF)
    assert isinstance(result, RecipientResults)
    assert [(r.recipient_id, r.outcome) for r in result.results] == [(1, RecipientOutcome.REFUSED)]
    assert result.rest is not None and result.rest.kind is FailureKind.TRANSIENT
    assert sink.messages == []
