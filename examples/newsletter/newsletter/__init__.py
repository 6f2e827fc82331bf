"""Newsletter: a small email app whose campaigns are sent through flask-campaign-retry.

flask --app newsletter db upgrade             # build the schema (migrations/)
flask --app newsletter seed                   # demo users, lists and campaigns
flask --app newsletter run                    # http://127.0.0.1:5000
flask --app newsletter campaign-retry worker  # only with REDIS_URL set
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from . import delivery  # noqa: F401  (registers the @retry hooks)
from .auth import bp as auth_bp
from .errors import register_error_pages
from .extensions import csrf, db, login_manager, migrate, retry
from .models import Campaign
from .seed import seed_command
from .settings import default_settings
from .views import bp as pages_bp

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then ``FLASK_*`` environment variables, then ``config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(default_settings(app.instance_path))
    app.config.from_prefixed_env()
    redis_url = os.environ.get("CAMPAIGN_RETRY_REDIS_URL") or os.environ.get("REDIS_URL")
    if redis_url and not app.config.get("CAMPAIGN_RETRY_REDIS_URL"):
        app.config["CAMPAIGN_RETRY_REDIS_URL"] = redis_url
    app.config.update(config or {})
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    retry.init_app(app, db=db, campaign_model=Campaign)

    app.register_blueprint(auth_bp)
    app.register_blueprint(pages_bp)
    register_error_pages(app)
    app.cli.add_command(seed_command)
    return app
