"""Which provider sends a campaign's batch: the host's ``@retry.provider_for`` choice, cached
per worker process by the key the host gives, or the configured provider.

The hook returns None (the configured provider), a provider, or a ``(key, provider)`` pair.
A bare provider is cached under its ``cache_key`` attribute when it has one (the SMTP provider
does: host, port, user, sender and a digest of the password), else used for this batch only.
The first provider built for a key is kept and reused (its SMTP connection with it); later ones
built for the same key are dropped unused, so building one must not connect. Keys name
settings, never secrets: they may appear in logs and on batch rows.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from flask_campaign_retry.providers.base import Provider
from flask_campaign_retry.state import AppState

#: Providers kept per process; the least recently used one is closed beyond this.
CACHE_SIZE = 64


def _key_and_provider(chosen: Any) -> tuple[str | None, Provider]:
    if isinstance(chosen, tuple) and len(chosen) == 2 and isinstance(chosen[0], str):
        key, provider = chosen
    else:
        key, provider = None, chosen
        cache_key = getattr(chosen, "cache_key", None)
        if isinstance(cache_key, str) and cache_key:
            key = cache_key
    if not isinstance(provider, Provider):
        raise TypeError(
            "@retry.provider_for must return None, a provider (an object with `name` and "
            "`send_batch(message, recipients, ref)`) or a (key, provider) pair; got "
            f"{type(provider).__name__}."
        )
    return key, provider


def _close(provider: Provider) -> None:
    close = getattr(provider, "close", None)
    if callable(close):
        close()


def _cached(state: AppState, key: str, built: Provider) -> Provider:
    pid = os.getpid()
    with state.lock:
        cache = state.provider_cache
        entry = cache.pop(key, None)
        if entry is not None and entry[0] == pid:
            cache[key] = entry  # most recently used last
            return entry[1]
        cache[key] = (pid, built)
        evicted = list(cache)[: max(0, len(cache) - CACHE_SIZE)]
        dropped = [cache.pop(k)[1] for k in evicted]
    for provider in dropped:
        _close(provider)
    return built


def provider_for_campaign(state: AppState, app: Flask, campaign: Any) -> tuple[str, Provider]:
    """(a key naming the provider, the provider) for ``campaign``'s next batch.

    ``campaign`` is the host's row, or a function without arguments that loads it (called only
    when a ``provider_for`` hook is registered). The configured provider's key is its
    configured name.
    """
    hook = state.extension.hooks.provider_for
    chosen = None
    if hook is not None:
        chosen = hook(campaign() if callable(campaign) else campaign)
    if chosen is None:
        return state.settings.provider, state.provider(app)
    key, provider = _key_and_provider(chosen)
    if key is None:
        return f"{provider.name}:uncached", provider
    return key, _cached(state, key, provider)
