"""The distribution a host would install: built with `python -m build`, checked with twine, and
the wheel (not this working tree) imported and used in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Runs in a process whose only copy of the package is the installed wheel.
USE_THE_WHEEL = """
import pathlib, sys
import flask_campaign_retry as fcr
site = pathlib.Path(sys.argv[1]).resolve()
assert pathlib.Path(fcr.__file__).resolve().is_relative_to(site), fcr.__file__
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy
db = SQLAlchemy()
class Campaign(fcr.CampaignMixin, db.Model):
    id = db.Column(db.Integer, primary_key=True)
app = Flask("host")
app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", CAMPAIGN_RETRY_PROVIDER="sandbox",
                  CAMPAIGN_RETRY_REDIS_URL="redis://127.0.0.1:1/0", SECRET_KEY="x")
db.init_app(app)
retry = fcr.CampaignRetry()
retry.authorize(lambda campaign, action: True)
retry.init_app(app, db=db, campaign_model=Campaign)
with app.test_request_context("/"):
    db.create_all()
    campaign = Campaign()
    db.session.add(campaign)
    db.session.commit()
    html = render_template_string("{% include 'campaign_retry/panel.html' %}", campaign=campaign)
assert 'class="cr-panel' in html and "Send now" in html, html
css = app.test_client().get("/campaigns/_campaign_retry_static/campaign_retry/panel.css")
assert css.status_code == 200 and b".cr-panel" in css.data, css.status_code
print("wheel ok", fcr.__version__)
"""


@pytest.mark.slow
def test_the_built_wheel_installs_and_serves_its_templates_and_stylesheet(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    # setuptools warns when a data folder inside the package is not a package of its own.
    assert "absent from the `packages` configuration" not in built.stdout + built.stderr
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "flask_campaign_retry/py.typed",
        "flask_campaign_retry/web/templates/campaign_retry/panel.html",
        "flask_campaign_retry/web/static/campaign_retry/panel.css",
    ):
        assert needed in names
    assert not [name for name in names if name.startswith("tests/")]
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", USE_THE_WHEEL, str(site)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("wheel ok")
