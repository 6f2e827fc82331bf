"""The built-in SMTP provider (standard library smtplib; reads Flask-Mail's ``MAIL_*`` keys)."""

from flask_campaign_retry.providers.smtp.provider import SMTPProvider
from flask_campaign_retry.providers.smtp.settings import SMTPSettings

__all__ = ["SMTPProvider", "SMTPSettings"]
