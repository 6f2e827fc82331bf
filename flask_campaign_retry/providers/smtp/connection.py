"""One SMTP connection per process, opened on first use and reused across batches; reopened
when the server dropped it, never shared with a forked child."""

from __future__ import annotations

import contextlib
import os
import smtplib
import socket
import ssl
import threading

from flask_campaign_retry.providers.smtp.replies import open_error
from flask_campaign_retry.providers.smtp.settings import SMTPSettings


class SMTPConnection:
    """Holds the open ``smtplib.SMTP``. Not for concurrent use: ``lock`` serialises callers."""

    def __init__(self, settings: SMTPSettings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self._smtp: smtplib.SMTP | None = None
        self._pid = 0

    @property
    def where(self) -> str:
        return f"{self.settings.server}:{self.settings.effective_port}"

    def get(self) -> smtplib.SMTP:
        """The open connection: reused while it answers NOOP, else opened (and logged in).

        Raises :class:`ProviderError` (nothing was sent) when it cannot be opened.
        """
        smtp = self._smtp
        if smtp is not None and self._pid == os.getpid():
            try:
                if smtp.noop()[0] == 250:
                    return smtp
            except (OSError, smtplib.SMTPException):
                pass
        self.drop()
        return self._open()

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        smtp: smtplib.SMTP | None = None
        try:
            if s.use_ssl:
                smtp = smtplib.SMTP_SSL(
                    s.server,
                    s.effective_port,
                    socket.gethostname(),
                    timeout=s.timeout,
                    context=context,
                )
            else:
                smtp = smtplib.SMTP(
                    s.server, s.effective_port, socket.gethostname(), timeout=s.timeout
                )
            smtp.ehlo_or_helo_if_needed()
            if s.use_tls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username is not None and s.password is not None:
                smtp.login(s.username, s.password)
        except (OSError, smtplib.SMTPException) as exc:
            if smtp is not None:
                _close_quietly(smtp)
            raise open_error(exc, self.where, [s.password]) from None
        self._smtp, self._pid = smtp, os.getpid()
        return smtp

    def drop(self) -> None:
        """Forget the connection without a QUIT (it is broken, or a parent process owns it)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None and self._pid == os.getpid():
            _close_quietly(smtp)

    def close(self) -> None:
        """Say QUIT and close (end of the process or of the provider)."""
        smtp, self._smtp = self._smtp, None
        if smtp is None or self._pid != os.getpid():
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            _close_quietly(smtp)


def _close_quietly(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()
