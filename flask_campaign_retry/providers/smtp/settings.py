"""The SMTP provider's settings: Flask-Mail's ``MAIL_*`` keys, each overridden by the
``CAMPAIGN_RETRY_SMTP_*`` key of the same name when that one is set (not None)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from flask_campaign_retry.errors import ConfigurationError

#: (our override key, Flask-Mail's key, default)
KEYS: dict[str, tuple[str, str, Any]] = {
    "server": ("CAMPAIGN_RETRY_SMTP_SERVER", "MAIL_SERVER", "localhost"),
    "port": ("CAMPAIGN_RETRY_SMTP_PORT", "MAIL_PORT", None),
    "use_tls": ("CAMPAIGN_RETRY_SMTP_USE_TLS", "MAIL_USE_TLS", False),
    "use_ssl": ("CAMPAIGN_RETRY_SMTP_USE_SSL", "MAIL_USE_SSL", False),
    "username": ("CAMPAIGN_RETRY_SMTP_USERNAME", "MAIL_USERNAME", None),
    "password": ("CAMPAIGN_RETRY_SMTP_PASSWORD", "MAIL_PASSWORD", None),
    "default_sender": ("CAMPAIGN_RETRY_SMTP_DEFAULT_SENDER", "MAIL_DEFAULT_SENDER", None),
}
TIMEOUT_KEY = "CAMPAIGN_RETRY_SMTP_TIMEOUT"
SHARED_TO_KEY = "CAMPAIGN_RETRY_SMTP_SHARED_TO"


@dataclass(frozen=True)
class SMTPSettings:
    """Where and how to connect. ``default_sender`` is the envelope sender (MAIL FROM) when
    set, else the message's From address is. ``shared_to``: when set, messages without
    ``%recipient.x%`` placeholders carry this To: header (e.g. ``undisclosed-recipients:;``)
    and go to a whole batch in one transaction; when None every recipient gets a message with
    its own To:. The password never appears in ``repr`` or in :attr:`cache_key`."""

    server: str = "localhost"
    port: int | None = None
    use_tls: bool = False
    use_ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    default_sender: str | None = None
    timeout: float = 30.0
    shared_to: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.server, str) or not self.server:
            raise ConfigurationError("SMTP server (MAIL_SERVER) must be a host name.")
        if self.port is not None and (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 < self.port < 65536
        ):
            raise ConfigurationError(f"SMTP port (MAIL_PORT) must be 1-65535, got {self.port!r}.")
        if self.use_tls and self.use_ssl:
            raise ConfigurationError(
                "MAIL_USE_TLS (STARTTLS) and MAIL_USE_SSL (TLS from the first byte) are both on: "
                "set only one (port 587 is usually STARTTLS, 465 SSL)."
            )
        if (self.username is None) != (self.password is None):
            raise ConfigurationError(
                "SMTP login needs both MAIL_USERNAME and MAIL_PASSWORD (or their "
                "CAMPAIGN_RETRY_SMTP_* overrides), or neither."
            )
        if not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise ConfigurationError(f"{TIMEOUT_KEY} must be seconds > 0, got {self.timeout!r}.")
        if self.default_sender is not None and "@" not in parseaddr(self.default_sender)[1]:
            raise ConfigurationError(
                f"The SMTP default sender (MAIL_DEFAULT_SENDER) {self.default_sender!r} has no "
                "address."
            )
        for name in ("server", "username", "default_sender", "shared_to"):
            value = getattr(self, name)
            if isinstance(value, str) and any(c in value for c in "\r\n\0"):
                raise ConfigurationError(f"SMTP setting {name} contains a line break or NUL.")

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 465 if self.use_ssl else 587 if self.use_tls else 25

    @property
    def envelope_sender(self) -> str | None:
        return parseaddr(self.default_sender)[1] if self.default_sender else None

    @property
    def cache_key(self) -> str:
        """Names these settings without revealing the password (a digest stands for it)."""
        digest = hashlib.sha256((self.password or "").encode()).hexdigest()[:12]
        mode = "ssl" if self.use_ssl else "starttls" if self.use_tls else "plain"
        return (
            f"smtp:{self.username or ''}@{self.server}:{self.effective_port}/{mode}"
            f"/{self.envelope_sender or ''}/{self.shared_to or ''}/{digest}"
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SMTPSettings:
        """Read the settings from a Flask config (or any mapping)."""
        values: dict[str, Any] = {}
        for name, (ours, flask_mail, default) in KEYS.items():
            value = config.get(ours)
            if value is None:
                value = config.get(flask_mail, default)
            values[name] = value
        sender = values["default_sender"]
        if isinstance(sender, (tuple, list)) and len(sender) == 2:  # Flask-Mail's (name, addr)
            values["default_sender"] = str(sender[1])
        for flag in ("use_tls", "use_ssl"):
            if not isinstance(values[flag], bool):
                raise ConfigurationError(
                    f"{KEYS[flag][0]} / {KEYS[flag][1]} must be True or False, got "
                    f"{values[flag]!r}."
                )
        timeout = config.get(TIMEOUT_KEY)
        return cls(
            **values,
            timeout=30.0 if timeout is None else timeout,
            shared_to=config.get(SHARED_TO_KEY),
        )
