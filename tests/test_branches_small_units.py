"""Refusals and fallbacks of small units that the end-to-end tests never reach: each says what is
wrong and how to fix it, and each fallback returns the documented value."""

from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from flask import Flask

from flask_campaign_retry.errors import ConfigurationError, NotInitializedError
from flask_campaign_retry.policy.backoff import RESUME_SPREAD_SECONDS, backoff_ceiling, next_try_at
from flask_campaign_retry.providers import mailgun as mailgun_package
from flask_campaign_retry.providers import sandbox as sandbox_package
from flask_campaign_retry.providers.base import BatchRef, OutgoingMessage
from flask_campaign_retry.providers.loader import load_provider
from flask_campaign_retry.providers.mailgun import provider as provider_module
from flask_campaign_retry.providers.mailgun.form import build_form, check_message
from flask_campaign_retry.providers.mailgun.provider import MailgunProvider
from flask_campaign_retry.providers.mailgun.signature import (
    DEFAULT_TOLERANCE_SECONDS,
    TOLERANCE_CONFIG,
    WebhookSignature,
    webhook_tolerance,
)
from flask_campaign_retry.providers.sandbox.provider import SandboxProvider
from flask_campaign_retry.queue.job_class import AppBoundJob
from flask_campaign_retry.state import EXTENSION_KEY, get_state


def message(**changes: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "subject": "Hello",
        "from_address": "news@example.com",
        "text": "Hi",
    }
    fields.update(changes)
    return OutgoingMessage(**fields)


# -- OutgoingMessage and the Mailgun form -----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"subject": ""}, "OutgoingMessage.subject is empty: the message_builder must set it."),
        (
            {"from_address": ""},
            "OutgoingMessage.from_address is empty: the message_builder must set it.",
        ),
        (
            {"text": None, "html": ""},
            "OutgoingMessage has neither html nor text: the message_builder must set one.",
        ),
    ],
)
def test_an_outgoing_message_missing_a_required_part_says_which(
    changes: dict[str, Any], words: str
) -> None:
    """Subject, sender and a body are each required, and the error names the missing one."""
    with pytest.raises(ValueError) as caught:
        message(**changes)
    assert str(caught.value) == words


def test_a_tag_that_is_not_a_string_is_refused_naming_its_type() -> None:
    """Mailgun's o:tag takes strings only: a number is refused before any request."""
    with pytest.raises(ValueError) as caught:
        check_message(message(tags=["news", 7]))
    assert str(caught.value) == "tags: every tag must be a string, got int."


def test_a_header_value_that_is_not_a_string_is_refused_naming_the_header() -> None:
    """A header's value must be text; the error quotes the header's name."""
    with pytest.raises(ValueError) as caught:
        check_message(message(headers={"X-Campaign": "a", "X-Count": 3}))
    assert str(caught.value) == "header 'X-Count': the value must be a string, got int."


def test_three_tags_pass_the_check_and_a_fourth_is_refused() -> None:
    """Three string tags and string headers are what Mailgun takes; the fourth tag is not."""
    check_message(message(tags=["a", "b", "c"], headers={"X-A": "1"}))
    with pytest.raises(ValueError, match=r"^tags: Mailgun allows at most 3 o:tag values"):
        check_message(message(tags=["a", "b", "c", "d"]))


def test_a_batch_without_recipients_is_refused() -> None:
    """An empty batch is a programming error, never an empty POST to Mailgun."""
    with pytest.raises(ValueError) as caught:
        build_form(message(), [], BatchRef(campaign_id=1, attempt_id=1, batch_id=1))
    assert str(caught.value) == "A batch needs at least one recipient."


# -- lazily imported provider classes ---------------------------------------------------------


def test_the_provider_packages_hand_out_their_class_and_refuse_other_names() -> None:
    """``providers.mailgun.MailgunProvider`` and ``providers.sandbox.SandboxProvider`` resolve
    to the classes; any other attribute is an AttributeError naming it."""
    assert mailgun_package.MailgunProvider is MailgunProvider
    assert sandbox_package.SandboxProvider is SandboxProvider
    with pytest.raises(AttributeError, match=r"^MailgunProviderr$"):
        _ = mailgun_package.MailgunProviderr
    with pytest.raises(AttributeError, match=r"^Sandbox$"):
        _ = sandbox_package.Sandbox


# -- loading a provider by name ---------------------------------------------------------------


def test_a_provider_needing_a_missing_sdk_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider module whose import fails on the mailgun SDK says which pip extra adds it."""
    (tmp_path / "fcr_needs_sdk.py").write_text("import mailgun\n\nclass P:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "mailgun", None)  # `import mailgun` now fails
    with pytest.raises(ConfigurationError) as caught:
        load_provider("fcr_needs_sdk:P", {})
    assert str(caught.value) == (
        "CAMPAIGN_RETRY_PROVIDER 'fcr_needs_sdk:P' needs the 'mailgun' package: "
        "pip install 'flask-campaign-retry[mailgun]'."
    )
    assert isinstance(caught.value.__cause__, ImportError)


def test_a_provider_module_that_does_not_exist_is_named() -> None:
    """A dotted path to nothing says which module could not be imported."""
    with pytest.raises(ConfigurationError) as caught:
        load_provider("fcr_no_such_module_here:Provider", {})
    assert str(caught.value).startswith(
        "CAMPAIGN_RETRY_PROVIDER 'fcr_no_such_module_here:Provider': "
        "cannot import 'fcr_no_such_module_here' ("
    )


def test_a_provider_class_missing_from_its_module_is_named() -> None:
    """A module that imports but lacks the class says which name it lacks."""
    with pytest.raises(ConfigurationError) as caught:
        load_provider("flask_campaign_retry.providers.base:NoSuchProvider", {})
    assert str(caught.value) == (
        "CAMPAIGN_RETRY_PROVIDER 'flask_campaign_retry.providers.base:NoSuchProvider': module "
        "'flask_campaign_retry.providers.base' has no 'NoSuchProvider'."
    )
    assert caught.value.__cause__ is None


def test_a_factory_that_builds_no_provider_is_refused_naming_what_it_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class without ``name`` and ``send_batch`` is refused at load, not at the first send."""
    (tmp_path / "fcr_not_a_provider.py").write_text(
        "class Thing:\n    def __init__(self, config):\n        self.config = config\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        load_provider("fcr_not_a_provider:Thing", {})
    assert str(caught.value) == (
        "CAMPAIGN_RETRY_PROVIDER 'fcr_not_a_provider:Thing' built Thing, which has no `name` "
        "attribute and `send_batch(message, recipients, ref)` method."
    )


# -- backoff ----------------------------------------------------------------------------------


def test_before_any_try_there_is_no_backoff() -> None:
    """The ceiling for zero tries is 0 seconds, whatever the base and cap."""
    assert backoff_ceiling(0, 30.0, 3600.0) == 0.0
    assert backoff_ceiling(1, 30.0, 3600.0) == 30.0


def test_a_resume_time_already_past_is_ignored_for_the_backoff() -> None:
    """A provider's "try again after" that has passed gives the normal backoff, not the past
    moment; one still ahead is kept, spread by at most RESUME_SPREAD_SECONDS."""
    now = datetime(2026, 12, 3, 12, 0, 0)
    rng = random.Random(1)
    expected = now + timedelta(seconds=random.Random(1).uniform(0.0, 60.0))
    assert next_try_at(now, 2, 30.0, 3600.0, resume_at=now - timedelta(minutes=5), rng=rng) == (
        expected
    )
    ahead = now + timedelta(minutes=5)
    later = next_try_at(now, 2, 30.0, 3600.0, resume_at=ahead, rng=random.Random(1))
    assert ahead <= later <= ahead + timedelta(seconds=RESUME_SPREAD_SECONDS)


# -- webhook signature ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "t=1,s=abc", ["1", "tok", "sig"]])
def test_a_signature_block_that_is_not_an_object_is_no_signature(raw: Any) -> None:
    """Anything but a mapping in the body's ``signature`` is treated as missing."""
    assert WebhookSignature.parse(raw) is None


def test_a_tolerance_set_to_none_is_the_default() -> None:
    """``CAMPAIGN_RETRY_WEBHOOK_TOLERANCE = None`` means the 12 hour default."""
    assert webhook_tolerance({TOLERANCE_CONFIG: None}) == DEFAULT_TOLERANCE_SECONDS == 12 * 3600


# -- jobs and the app's state -----------------------------------------------------------------


def test_a_job_class_not_bound_to_an_app_refuses_to_run_and_says_how() -> None:
    """A worker started without the extension's job class gets a message naming the command."""
    job = AppBoundJob.create("builtins.len", args=([1],), connection=fakeredis.FakeStrictRedis())
    with pytest.raises(RuntimeError) as caught:
        job.perform()
    assert str(caught.value) == (
        "This job class is not bound to a live Flask app: run workers with "
        "`flask campaign-retry worker` (or CampaignRetry.make_worker)."
    )


def test_a_state_replaced_by_something_else_is_refused_naming_the_key() -> None:
    """If a host overwrote ``app.extensions['campaign_retry']``, the error says so."""
    app = Flask("replaced")
    app.extensions[EXTENSION_KEY] = {"not": "our state"}
    with pytest.raises(NotInitializedError) as caught:
        get_state(app)
    assert str(caught.value) == (
        "app.extensions['campaign_retry'] of app 'replaced' was replaced by something "
        "that is not flask-campaign-retry's state."
    )


# -- Mailgun provider construction and its answer ---------------------------------------------


@pytest.mark.parametrize(("key", "domain"), [("", "mg.example.com"), ("key-1", "")])
def test_a_mailgun_provider_without_key_or_domain_is_refused(key: str, domain: str) -> None:
    """Built directly (not from config), a blank key or domain is still a clear refusal."""
    with pytest.raises(ConfigurationError) as caught:
        MailgunProvider(key, domain)
    assert str(caught.value) == "MailgunProvider needs an API key and a sending domain."


def test_a_mailgun_api_url_that_is_not_text_is_refused_quoting_it() -> None:
    """``MAILGUN_API_URL = 443`` is named back to the host, not passed on to requests."""
    config = {
        "MAILGUN_API_KEY": "key-1",
        "MAILGUN_DOMAIN": "mg.example.com",
        "MAILGUN_API_URL": 443,
    }
    with pytest.raises(ConfigurationError) as caught:
        MailgunProvider.from_config(config)
    assert str(caught.value) == "MAILGUN_API_URL must be a string, got 443."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"id": "<20261203.1@mg.example.com>", "message": "Queued. Thank you."}',
            "20261203.1@mg.example.com",
        ),
        ('{"id": "bare@mg.example.com"}', "bare@mg.example.com"),
        ('{"message": "Queued. Thank you."}', None),
        ('{"id": 7}', None),
        ('["<x@mg>"]', None),
        ("<html>502 Bad Gateway</html>", None),
    ],
)
def test_the_message_id_is_read_without_brackets_or_is_none_with_a_warning(
    text: str, expected: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Mailgun's ``id`` loses its angle brackets (the events' form); an answer without a usable
    id gives None and one warning, never an exception after the mail was accepted."""
    with caplog.at_level("WARNING", logger="flask_campaign_retry"):
        assert provider_module._message_id(SimpleNamespace(text=text)) == expected
    warned = [r.getMessage() for r in caplog.records]
    if expected is None:
        assert warned == ["Mailgun accepted a batch but its answer had no message id"]
    else:
        assert warned == []
