"""``CampaignRetry``: the extension object a host registers with ``init_app``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask

from flask_campaign_retry import jobs  # noqa: F401 - loaded before any worker forks
from flask_campaign_retry.alerts.config import WEBHOOK_DEFAULTS, load_webhook_options
from flask_campaign_retry.campaign_fields import renamed
from flask_campaign_retry.config import DEFAULTS, load_settings
from flask_campaign_retry.engine.preview import retry_preview
from flask_campaign_retry.engine.scheduling import cancel_schedule, schedule_campaign
from flask_campaign_retry.engine.sending import start_send
from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.hooks import (
    AfterClone,
    Authorizer,
    CampaignUrl,
    CloneFields,
    CurrentUser,
    Hooks,
    MessageBuilder,
    ProviderFor,
    RecipientExcluder,
    RecipientsLoader,
)
from flask_campaign_retry.inbound.mailgun_webhook import register_mailgun_webhook
from flask_campaign_retry.mixins import CampaignMixin
from flask_campaign_retry.models import tracking_models
from flask_campaign_retry.policy.adoption import Adoption, adopt_sent
from flask_campaign_retry.policy.cloning import clone_campaign
from flask_campaign_retry.policy.eligibility import retry_eligibility
from flask_campaign_retry.policy.retrying import start_retry
from flask_campaign_retry.providers.loader import load_provider
from flask_campaign_retry.queue.backend import QueueBackend
from flask_campaign_retry.recovery.sweep import recover
from flask_campaign_retry.state import EXTENSION_KEY, AppState, get_state
from flask_campaign_retry.web.options import WEB_DEFAULTS, load_web_options
from flask_campaign_retry.web.report import delivery_report
from flask_campaign_retry.web.surfaces import register_surfaces

log = logging.getLogger("flask_campaign_retry")

F = TypeVar("F", bound=Callable[..., Any])


class CampaignRetry:
    """Owns the send-and-recover path of a host's campaigns.

    ::

        retry = CampaignRetry()
        retry.init_app(app, db=db, campaign_model=Campaign)

        @retry.recipients_loader
        def load(campaign): ...
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any = None,
        campaign_model: type | None = None,
    ) -> None:
        self.hooks = Hooks()
        if app is not None:
            self.init_app(app, db=db, campaign_model=campaign_model)

    # -- registration -------------------------------------------------------------------------

    def init_app(self, app: Flask, *, db: Any = None, campaign_model: type | None = None) -> None:
        """Register on ``app``: apply config defaults, validate them, declare the tables."""
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(
                f"flask-campaign-retry is already initialised on app {app.name!r}; call "
                "init_app once per app (create a new app in each test instead)."
            )
        if db is None or not hasattr(db, "Model") or not hasattr(db, "session"):
            raise ConfigurationError(
                "init_app needs db=<your flask_sqlalchemy.SQLAlchemy instance>."
            )
        if not isinstance(campaign_model, type) or not (
            issubclass(campaign_model, CampaignMixin) or renamed(campaign_model)
        ):
            raise ConfigurationError(
                "init_app needs campaign_model=<your campaign model>, a db.Model subclass that "
                "inherits CampaignMixin (or campaign_mixin(...)): "
                "`class Campaign(CampaignMixin, db.Model): ...`."
            )
        for key, value in {**DEFAULTS, **WEBHOOK_DEFAULTS, **WEB_DEFAULTS}.items():
            app.config.setdefault(key, value)
        settings = load_settings(app.config)
        load_webhook_options(app.config)  # fail at start-up, not at the first alert
        load_web_options(app.config)
        # An unknown provider, or one whose settings are missing, fails here with the fix-it
        # message, never later in a worker while the campaign waits in SENDING.
        provider = load_provider(settings.provider, app.config)
        fallback = (
            load_provider(settings.fallback_provider, app.config)
            if settings.fallback_provider is not None
            else None
        )
        models = tracking_models(db, campaign_model)
        app.extensions[EXTENSION_KEY] = AppState(
            extension=self,
            settings=settings,
            db=db,
            models=models,
            queue_factory=QueueBackend.for_app,
        )
        app.extensions[EXTENSION_KEY].use_provider(provider)
        if fallback is not None:
            app.extensions[EXTENSION_KEY].use_fallback_provider(fallback)
        register_surfaces(app)  # routes, panel global, CLI group
        register_mailgun_webhook(app)  # POST <prefix>/webhooks/mailgun (signature, not CSRF)
        if self.hooks.authorize is None:
            log.warning(
                "No @retry.authorize hook is registered yet: until one is, every "
                "campaign-retry route answers 403."
            )

    # -- hook decorators (each returns the function) --------------------------------------------

    def recipients_loader(self, func: RecipientsLoader) -> RecipientsLoader:
        """``campaign -> iterable`` of emails, (email, vars) tuples or {'email', 'variables'}."""
        self.hooks.recipients_loader = func
        return func

    def message_builder(self, func: MessageBuilder) -> MessageBuilder:
        """``campaign -> OutgoingMessage`` or a dict with subject, from, html/text, ..."""
        self.hooks.message_builder = func
        return func

    def authorize(self, func: Authorizer) -> Authorizer:
        """``(campaign, action) -> bool`` with action in {"retry", "clone", "view", "send"}."""
        self.hooks.authorize = func
        return func

    def exclude_recipients(self, func: RecipientExcluder) -> RecipientExcluder:
        """``(campaign, [emails]) -> emails to skip`` (unsubscribed or suppressed since)."""
        self.hooks.exclude_recipients = func
        return func

    def clone_fields(self, func: CloneFields) -> CloneFields:
        """``campaign -> names of the host's columns a clone copies``."""
        self.hooks.clone_fields = func
        return func

    def campaign_url(self, func: CampaignUrl) -> CampaignUrl:
        """``campaign -> URL of the host's page for it``: a clone made from a form post opens
        on the new draft's page instead of going back."""
        self.hooks.campaign_url = func
        return func

    def after_clone(self, func: AfterClone) -> AfterClone:
        """``(original, clone) -> None``, run in the clone's transaction before it commits:
        copy what lives in the host's other tables (attachments, personalisation data), or
        derive the clone's name. If it raises, no clone is created."""
        self.hooks.after_clone = func
        return func

    def provider_for(self, func: ProviderFor) -> ProviderFor:
        """``campaign -> provider or None``: the provider that sends this campaign's batches,
        built from its owner's own settings; None means the configured provider. Return a
        provider with a ``cache_key`` attribute, or a ``(key, provider)`` pair, to have it
        reused by every batch with that key in a worker process (see "Per-campaign
        providers" in the README)."""
        self.hooks.provider_for = func
        return func

    def current_user(self, func: CurrentUser) -> CurrentUser:
        """``() -> id of the user acting now`` (recorded in the attempt log)."""
        self.hooks.current_user = func
        return func

    # -- operations ------------------------------------------------------------------------------

    def _state(self) -> AppState:
        return get_state(extension=self)

    def _require_send_hooks(self) -> None:
        missing = [
            name
            for name in ("recipients_loader", "message_builder")
            if getattr(self.hooks, name) is None
        ]
        if missing:
            raise ConfigurationError(
                "Cannot send: register "
                + " and ".join(f"@retry.{name}" for name in missing)
                + " first."
            )

    def _actor(self, triggered_by: str | None) -> str | None:
        if triggered_by is not None:
            return triggered_by
        hook = self.hooks.current_user
        user = hook() if hook is not None else None
        return None if user is None else str(user)

    def send(self, campaign: Any, *, triggered_by: str | None = None) -> Any:
        """Start sending a DRAFT or SCHEDULED campaign; returns the attempt row.

        Raises :class:`TransitionRefused` when the campaign is not sendable (nothing changes)
        and :class:`ConfigurationError` when a required hook is missing.
        """
        state = self._state()
        self._require_send_hooks()
        return start_send(state, campaign, self._actor(triggered_by))

    def retry(
        self,
        campaign: Any,
        *,
        include_uncertain: bool = False,
        triggered_by: str | None = None,
    ) -> Any:
        """ "Retry Send": resend to the failed and never-submitted recipients only.

        Allowed when the campaign is FAILED or PARTIALLY_SENT, within CAMPAIGN_RETRY_WINDOW of
        ``failed_at``, with attempts left and someone to retry. UNCERTAIN recipients are resent
        only with ``include_uncertain=True``. Raises :class:`TransitionRefused` with the reason.
        """
        state = self._state()
        self._require_send_hooks()
        return start_retry(
            state,
            campaign,
            include_uncertain=include_uncertain,
            triggered_by=self._actor(triggered_by),
        )

    def retry_eligibility(self, campaign: Any, *, include_uncertain: bool = False) -> Any:
        """Whether :meth:`retry` would be allowed now, why not, deadline and attempts left."""
        return retry_eligibility(self._state(), campaign, include_uncertain=include_uncertain)

    def schedule(self, campaign: Any, at: Any) -> Any:
        """Send a DRAFT campaign at ``at`` (or move a SCHEDULED one to ``at``); returns the
        stored time (naive UTC).

        ``at`` is an aware ``datetime`` (any zone), a naive one taken as UTC, or an ISO 8601
        string with a zone (``2026-12-24T09:00:00Z``). Raises :class:`InvalidScheduleTime`
        for a time that is unparsable, without a zone (strings) or not in the future, and
        :class:`TransitionRefused` when the campaign is neither DRAFT nor SCHEDULED.
        """
        state = self._state()
        self._require_send_hooks()
        return schedule_campaign(state, campaign, at)

    def cancel_schedule(self, campaign: Any) -> None:
        """Back from SCHEDULED to DRAFT; :class:`TransitionRefused` if the start already
        happened (or it was not scheduled). A start and a cancel racing: exactly one wins."""
        cancel_schedule(self._state(), campaign)

    def retry_preview(
        self,
        campaign: Any,
        *,
        include_uncertain: bool = False,
        after: int | None = None,
        limit: int | None = None,
    ) -> Any:
        """Who :meth:`retry` would send to now (after the exclusion hook), grouped by reason,
        a keyset page of them, and who it would not resend and why (see
        :class:`engine.preview.RetryPreview`)."""
        return retry_preview(
            self._state(), campaign, include_uncertain=include_uncertain, after=after, limit=limit
        )

    def clone(self, campaign: Any, *, only_unsent: bool = False) -> Any:
        """Copy ``campaign`` into a new DRAFT (see :func:`policy.cloning.clone_campaign`)."""
        return clone_campaign(self._state(), campaign, only_unsent=only_unsent)

    def delivery(self, campaign: Any) -> dict[str, Any]:
        """Where the campaign's delivery stands (the JSON of the ``delivery`` route)."""
        return delivery_report(self._state(), campaign)

    def recover(self) -> Any:
        """Run one recovery sweep for the current app now (see :mod:`recovery.sweep`)."""
        self._state()
        return recover()

    def adopt(self, sent_where: Any, *, dry_run: bool = False) -> Adoption:
        """Mark as SENT the campaigns a host sent before adopting the extension (DRAFT, never
        touched by it) that ``sent_where`` selects: SQL text or a SQLAlchemy condition."""
        return adopt_sent(self._state(), sent_where, dry_run=dry_run)

    def models(self) -> Any:
        """The tracking models (recipient, batch, attempt) of the current app."""
        return self._state().models
