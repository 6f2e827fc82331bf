"""Register the host-facing surfaces on an app: the blueprint (with the panel's template
global) and the ``flask campaign-retry`` command group. Called once from ``init_app``."""

from __future__ import annotations

import logging

from flask import Flask

from flask_campaign_retry.web.cli import cli_group
from flask_campaign_retry.web.cli_adopt import adopt_command
from flask_campaign_retry.web.routes import register_routes
from flask_campaign_retry.web.security import INSTALL_FLASK_WTF, flask_wtf_available

log = logging.getLogger("flask_campaign_retry")


def register_surfaces(app: Flask) -> None:
    """Mount the routes and add the CLI group; warn when CSRF protection cannot work."""
    register_routes(app)
    cli_group.add_command(adopt_command)
    app.cli.add_command(cli_group)
    if not flask_wtf_available() and app.config.get("WTF_CSRF_ENABLED", True) is not False:
        log.warning(INSTALL_FLASK_WTF)
