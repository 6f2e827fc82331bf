"""The built-in SMTP provider (``CAMPAIGN_RETRY_PROVIDER = "smtp"``), on the standard
library's smtplib: one connection per process reused across batches, SSL or STARTTLS, login,
and each recipient's answer reported as it came (:class:`RecipientResults`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from typing import Any

from flask_campaign_retry.providers.base import (
    BatchRecipient,
    BatchRef,
    OutgoingMessage,
    ProviderError,
    RecipientOutcome,
    RecipientResult,
    RecipientResults,
)
from flask_campaign_retry.providers.smtp.compose import Composer, validate
from flask_campaign_retry.providers.smtp.connection import SMTPConnection
from flask_campaign_retry.providers.smtp.settings import SMTPSettings
from flask_campaign_retry.providers.smtp.template import TemplateRenderer
from flask_campaign_retry.providers.smtp.transaction import run_transaction
from flask_campaign_retry.statuses import FailureKind


class SMTPProvider:
    """Sends a batch over SMTP.

    Personalised content (a ``%recipient.x%`` placeholder, or each recipient's own To:, the
    default) goes as one message per recipient over the same connection; identical content
    (``CAMPAIGN_RETRY_SMTP_SHARED_TO`` set, no placeholders) as one transaction per batch.
    Exactly one attempt per recipient per call; nothing is retried here.
    """

    name = "smtp"

    def __init__(self, settings: SMTPSettings) -> None:
        self.settings = settings
        self.cache_key = settings.cache_key
        self.connection = SMTPConnection(settings)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SMTPProvider:
        return cls(SMTPSettings.from_config(config))

    def __repr__(self) -> str:
        return f"SMTPProvider({self.cache_key!r})"

    def validate(self, message: OutgoingMessage) -> None:
        """Raise ``ValueError`` naming the field this provider cannot carry."""
        validate(message)

    def close(self) -> None:
        """QUIT the connection (it is opened again on the next batch)."""
        with self.connection.lock:
            self.connection.close()

    def send_batch(
        self,
        message: OutgoingMessage,
        recipients: Sequence[BatchRecipient],
        ref: BatchRef,
    ) -> RecipientResults:
        try:
            validate(message)
        except ValueError as exc:
            raise ProviderError(
                FailureKind.FATAL, f"message cannot be sent over SMTP: {exc}"
            ) from None
        composer = Composer(message, ref, self.settings.shared_to)
        template = TemplateRenderer(composer) if composer.personal else None
        sender = self.settings.envelope_sender or parseaddr(message.from_address)[1]
        secrets = [self.settings.password]
        if composer.personal:
            groups = [[recipient] for recipient in recipients]
        else:
            groups = [list(recipients)] if recipients else []
        results: list[RecipientResult] = []
        with self.connection.lock:
            smtp = self.connection.get()
            for group in groups:
                message_id = f"{uuid.uuid4().hex}@{composer.domain}"
                try:
                    if template is not None:
                        body = template.render(group[0].email, group[0].variables, message_id)
                    else:
                        body = composer.render(str(self.settings.shared_to), {}, message_id)
                except (ValueError, TypeError, UnicodeError) as exc:  # nothing was sent
                    text = f"message could not be built: {type(exc).__name__}: {exc}"[:300]
                    results += [RecipientResult(r.id, RecipientOutcome.REFUSED, None, text)
                                for r in group]  # fmt: skip
                    continue
                done = run_transaction(smtp, sender, group, body, message_id, secrets)
                results += done.results
                if done.broken:
                    self.connection.drop()
                if done.stop is not None:
                    if not results:
                        raise done.stop
                    return RecipientResults(results, rest=done.stop)
        return RecipientResults(results)
