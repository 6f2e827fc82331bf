"""Configuration of the web surfaces: the panel's stylesheet and the flash categories.

``CAMPAIGN_RETRY_PANEL_STYLESHEET`` (bool, default True)
    The panel links its own small stylesheet (every rule scoped to ``.cr-panel``). False: the
    host styles the ``cr-*`` classes itself.
``CAMPAIGN_RETRY_FLASH_CATEGORIES`` (mapping, default ``{"success": "success", "error": "error"}``)
    The categories of the flash messages that form posts leave, e.g.
    ``{"success": "success", "error": "danger"}`` for Bootstrap's alert classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_campaign_retry.errors import ConfigurationError

PANEL_STYLESHEET = "CAMPAIGN_RETRY_PANEL_STYLESHEET"
FLASH_CATEGORIES = "CAMPAIGN_RETRY_FLASH_CATEGORIES"
FLASH_OUTCOMES = ("success", "error")

WEB_DEFAULTS: dict[str, Any] = {
    PANEL_STYLESHEET: True,
    FLASH_CATEGORIES: {"success": "success", "error": "error"},
}


@dataclass(frozen=True)
class WebOptions:
    """The validated web settings of one app."""

    panel_stylesheet: bool
    flash_categories: Mapping[str, str]


def load_web_options(config: Mapping[str, Any]) -> WebOptions:
    """Read and check the web keys; raise :class:`ConfigurationError` saying how to fix them."""
    stylesheet = config.get(PANEL_STYLESHEET, WEB_DEFAULTS[PANEL_STYLESHEET])
    if not isinstance(stylesheet, bool):
        raise ConfigurationError(f"{PANEL_STYLESHEET} must be True or False, got {stylesheet!r}.")
    categories = config.get(FLASH_CATEGORIES, WEB_DEFAULTS[FLASH_CATEGORIES])
    example = '{"success": "success", "error": "danger"}'
    if not isinstance(categories, Mapping) or set(categories) != set(FLASH_OUTCOMES):
        raise ConfigurationError(
            f"{FLASH_CATEGORIES} must map exactly 'success' and 'error' to your flash "
            f"categories, e.g. {example}; got {categories!r}."
        )
    for outcome, category in categories.items():
        if not isinstance(category, str) or not category.strip():
            raise ConfigurationError(
                f"{FLASH_CATEGORIES}[{outcome!r}] must be a non-empty string, got {category!r}."
            )
    return WebOptions(panel_stylesheet=stylesheet, flash_categories=dict(categories))
