"""STARTTLS and implicit TLS against the sink with a self-signed certificate made by the
openssl command: an untrusted certificate stops the campaign (fatal, what to fix); a trusted
one carries the login and the mail."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_campaign_retry.providers.base import (
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    ProviderError,
    RecipientResults,
)
from flask_campaign_retry.providers.smtp import SMTPProvider, SMTPSettings
from flask_campaign_retry.providers.smtp import connection as connection_module
from flask_campaign_retry.statuses import FailureKind
from flask_campaign_retry.testing.smtp_sink import SMTPSink

REF = BatchRef(1, 1, 1)
MESSAGE = OutgoingMessage(subject="Hi", from_address="news@example.com", text="Hello")
PEOPLE = [BatchRecipient(1, "ann@example.com"), BatchRecipient(2, "bob@example.com")]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


@pytest.fixture
def trust(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the provider's default context trust the test certificate (as a host whose server
    has a private CA installs it system-wide)."""
    original = ssl.create_default_context

    def trusting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = original(*args, **kwargs)
        context.load_verify_locations(cafile=str(certificate[0]))
        return context

    monkeypatch.setattr(connection_module.ssl, "create_default_context", trusting)
    yield


def test_starttls_with_an_untrusted_certificate_is_fatal(certificate: tuple[Path, Path]) -> None:
    with SMTPSink(starttls=server_context(certificate)) as sink:
        provider = SMTPProvider(SMTPSettings(server="127.0.0.1", port=sink.port, use_tls=True))
        with pytest.raises(ProviderError) as caught:
            provider.send_batch(MESSAGE, PEOPLE, REF)
        assert caught.value.kind is FailureKind.FATAL
        assert "TLS certificate of 127.0.0.1" in caught.value.message
        assert sink.messages == []


def test_starttls_then_login_then_mail(certificate: tuple[Path, Path], trust: None) -> None:
    with SMTPSink(starttls=server_context(certificate), credentials=("u", "pw")) as sink:
        settings = SMTPSettings(
            server="127.0.0.1", port=sink.port, use_tls=True, username="u", password="pw"
        )
        result = SMTPProvider(settings).send_batch(MESSAGE, PEOPLE, REF)
        assert isinstance(result, RecipientResults)
        assert [r.outcome.value for r in result.results] == ["accepted", "accepted"]
        assert [m.rcpt_tos for m in sink.messages] == [("ann@example.com",), ("bob@example.com",)]


def test_implicit_tls(certificate: tuple[Path, Path], trust: None) -> None:
    with SMTPSink(implicit_tls=server_context(certificate)) as sink:
        settings = SMTPSettings(server="127.0.0.1", port=sink.port, use_ssl=True)
        SMTPProvider(settings).send_batch(MESSAGE, PEOPLE, REF)
        assert len(sink.messages) == 2


def test_starttls_asked_of_a_server_without_it_is_fatal() -> None:
    with SMTPSink() as sink:
        provider = SMTPProvider(SMTPSettings(server="127.0.0.1", port=sink.port, use_tls=True))
        with pytest.raises(ProviderError) as caught:
            provider.send_batch(MESSAGE, PEOPLE, REF)
        assert caught.value.kind is FailureKind.FATAL
        assert "MAIL_USE_TLS" in caught.value.message
