"""Callbacks a host registers with decorators on :class:`CampaignRetry`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

RecipientsLoader = Callable[[Any], Iterable[Any]]
MessageBuilder = Callable[[Any], Any]
Authorizer = Callable[[Any, str], bool]
RecipientExcluder = Callable[[Any, list[str]], Iterable[str]]
CloneFields = Callable[[Any], Iterable[str]]
CurrentUser = Callable[[], str | None]
CampaignUrl = Callable[[Any], str]
AfterClone = Callable[[Any, Any], None]
#: ``campaign -> provider``, ``(cache key, provider)`` or None (the configured provider).
ProviderFor = Callable[[Any], Any]


@dataclass
class Hooks:
    """The host's callbacks. They belong to the extension object, not to an app, the way
    flask-login keeps ``user_loader`` on the ``LoginManager``."""

    recipients_loader: RecipientsLoader | None = None
    message_builder: MessageBuilder | None = None
    authorize: Authorizer | None = None
    exclude_recipients: RecipientExcluder | None = None
    clone_fields: CloneFields | None = None
    current_user: CurrentUser | None = None
    campaign_url: CampaignUrl | None = None
    after_clone: AfterClone | None = None
    provider_for: ProviderFor | None = None
