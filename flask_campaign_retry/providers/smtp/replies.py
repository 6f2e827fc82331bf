"""How SMTP replies and socket errors map to outcomes.

Before the message body is sent nothing can have been delivered, so connection errors and
421/450/451/452 there are temporary. 550-554 to RCPT refuse that recipient for good. A refused
login (530/534/535) or a 5xx to MAIL FROM is the sender's settings: fatal for the campaign. Only
a reply lost after the body went out is uncertain.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable

from flask_campaign_retry.providers.base import ProviderError, RecipientOutcome
from flask_campaign_retry.statuses import FailureKind

MAX_TEXT = 300
AUTH_CODES = frozenset({530, 534, 535})
CREDENTIALS_HINT = (
    "check the SMTP user name and password (MAIL_USERNAME / MAIL_PASSWORD, their "
    "CAMPAIGN_RETRY_SMTP_* overrides, or the settings your @retry.provider_for hook uses)"
)


def reply_text(
    code: int | None, text: bytes | str | None, secrets: Iterable[str | None] = ()
) -> str:
    """``SMTP 550 5.1.1 mailbox unavailable``: one line, shortened, secrets removed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    words = " ".join((text or "").split())
    for secret in secrets:
        if secret:
            words = words.replace(secret, "[redacted]")
    line = f"SMTP {code} {words}".strip() if code is not None else words
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 3] + "..."


def rcpt_outcome(code: int) -> RecipientOutcome:
    """The outcome of one RCPT TO (or of DATA for the recipients it covers)."""
    if 200 <= code < 300:
        return RecipientOutcome.ACCEPTED
    if 400 <= code < 500:
        return RecipientOutcome.DEFERRED
    return RecipientOutcome.REFUSED


def is_fatal_reply(code: int) -> bool:
    """A reply that no other recipient will fare better with: fix the settings first."""
    return code in AUTH_CODES


def command_error(
    stage: str, code: int, text: bytes | str, secrets: Iterable[str | None] = ()
) -> ProviderError:
    """A non-success reply to MAIL FROM (or to the greeting or EHLO): applies to everyone."""
    detail = reply_text(code, text, secrets)
    if code in AUTH_CODES:
        return ProviderError(
            FailureKind.FATAL, f"{detail} at {stage}: {CREDENTIALS_HINT}", code=code
        )
    if 400 <= code < 500:
        return ProviderError(FailureKind.TRANSIENT, f"{detail} at {stage}", code=code)
    return ProviderError(
        FailureKind.FATAL,
        f"{detail} at {stage}: the server refuses this sender; check the From address or "
        "MAIL_DEFAULT_SENDER and that the account may send as it",
        code=code,
    )


def open_error(exc: BaseException, where: str, secrets: Iterable[str | None] = ()) -> ProviderError:
    """An error while connecting, starting TLS or logging in (nothing was sent)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        detail = reply_text(exc.smtp_code, exc.smtp_error, secrets)
        return ProviderError(
            FailureKind.FATAL,
            f"{detail}: login to {where} refused; {CREDENTIALS_HINT}",
            code=exc.smtp_code,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ProviderError(
            FailureKind.FATAL,
            f"{where} does not support {exc}: check MAIL_USE_TLS / MAIL_USE_SSL and the port",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProviderError(
            FailureKind.FATAL,
            f"TLS certificate of {where} not trusted ({exc.verify_message}): check MAIL_SERVER",
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return command_error(f"connecting to {where}", exc.smtp_code, exc.smtp_error, secrets)
    return ProviderError(
        FailureKind.TRANSIENT,
        f"cannot reach SMTP server {where}: {type(exc).__name__}: {exc}"[:MAX_TEXT],
    )


def lost_connection(exc: BaseException) -> str:
    """Text for recipients left unsent by a dropped connection."""
    return f"not sent: the SMTP connection was lost ({type(exc).__name__})"
