"""Per-app state, kept only in ``app.extensions["campaign_retry"]``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, has_app_context

from flask_campaign_retry.config import Settings
from flask_campaign_retry.errors import NotInitializedError
from flask_campaign_retry.models import TrackingModels
from flask_campaign_retry.providers.loader import load_provider

if TYPE_CHECKING:
    from flask_campaign_retry.extension import CampaignRetry
    from flask_campaign_retry.providers.base import Provider
    from flask_campaign_retry.queue.backend import QueueBackend

EXTENSION_KEY = "campaign_retry"


def _no_queue(app: Flask, state: AppState) -> QueueBackend:
    raise NotInitializedError(
        f"flask-campaign-retry's queue is not set up on app {app.name!r}: build the state "
        "through `retry.init_app(app, ...)`."
    )


@dataclass
class AppState:
    """Everything the extension knows about one app."""

    extension: CampaignRetry
    settings: Settings
    db: Any
    models: TrackingModels
    pool_pid: int = field(default_factory=os.getpid)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _provider: Provider | None = None
    _queue: QueueBackend | None = None
    _fallback: Provider | None = None
    embedded: Any = None
    queue_factory: Callable[[Flask, AppState], QueueBackend] = field(default=_no_queue)
    #: ``@retry.provider_for`` providers by cache key: (pid that built it, provider).
    provider_cache: dict[str, tuple[int, Provider]] = field(default_factory=dict)

    def provider(self, app: Flask) -> Provider:
        """The app's provider, built on first use in this process."""
        with self.lock:
            if self._provider is None:
                self._provider = load_provider(self.settings.provider, app.config)
            return self._provider

    def fallback_provider(self, app: Flask) -> Provider | None:
        """The provider named by ``CAMPAIGN_RETRY_FALLBACK_PROVIDER`` (None when unset), built
        on first use in this process."""
        name = self.settings.fallback_provider
        if name is None:
            return None
        with self.lock:
            if self._fallback is None:
                self._fallback = load_provider(name, app.config)
            return self._fallback

    def use_fallback_provider(self, provider: Provider) -> None:
        """Replace the fallback provider (tests and hosts that build their own instance)."""
        with self.lock:
            self._fallback = provider

    def queue(self, app: Flask) -> QueueBackend:
        """The app's RQ queue, connected on first use in this process (by the factory that
        ``init_app`` installs, so this module needs no import of the queue package)."""
        with self.lock:
            if self._queue is None:
                self._queue = self.queue_factory(app, self)
            return self._queue

    def use_provider(self, provider: Provider) -> None:
        """Replace the provider (tests and host apps that build their own instance)."""
        with self.lock:
            self._provider = provider


def get_state(app: Flask | None = None, extension: CampaignRetry | None = None) -> AppState:
    """The state of ``app`` (default: the current app), with an error that explains misuse."""
    if app is None:
        if not has_app_context():
            raise NotInitializedError(
                "flask-campaign-retry needs an application context: call this inside a request, "
                "a CLI command, or `with app.app_context():`."
            )
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise NotInitializedError(
            f"flask-campaign-retry is not initialised on app {app.name!r}: "
            "call `retry.init_app(app, db=db, campaign_model=Campaign)` in your app factory."
        )
    if extension is not None and state.extension is not extension:
        raise NotInitializedError(
            f"App {app.name!r} was initialised with another CampaignRetry instance; "
            "use the instance passed to init_app."
        )
    if not isinstance(state, AppState):
        raise NotInitializedError(
            f"app.extensions[{EXTENSION_KEY!r}] of app {app.name!r} was replaced by something "
            "that is not flask-campaign-retry's state."
        )
    return state
