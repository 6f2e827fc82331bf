"""The example newsletter app, started the way `make demo` starts it (run-demo.sh), checked
over HTTP: the seeded campaigns, authorization between its two users, its migrations, and a
real `flask campaign-retry worker` when REDIS_URL is set."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e_demo import (
    ALICE,
    ALICE_CAMPAIGNS,
    BOB,
    BOB_CAMPAIGNS,
    EXAMPLE,
    REPO,
    campaign_rows,
    csrf_token,
    delivery,
    free_port,
    running_demo,
)

pytestmark = pytest.mark.slow


def test_make_demo_serves_the_seeded_campaigns_and_keeps_users_apart(tmp_path: Path) -> None:
    with running_demo(tmp_path) as demo:
        assert "Sign in as  alice@example.com / alice-demo" in demo.log()
        assert "embedded development queue" in demo.log()
        alice = demo.sign_in(ALICE)
        mine = campaign_rows(alice, demo.url)
        assert {name: status for name, (_, status) in mine.items()} == ALICE_CAMPAIGNS

        weekly_id = mine["Weekly digest #12"][0]
        weekly = delivery(alice, demo.url, weekly_id)
        assert weekly["status"] == "PARTIALLY_SENT"
        assert (weekly["successful_sends"], weekly["total_recipients"]) == (190, 240)
        assert weekly["retry"]["allowed"] is True
        assert weekly["retry"]["attempts_left"] == 3
        assert weekly["retry"]["retryable"] == 50
        [outage] = weekly["failures"]["groups"]
        assert (outage["failure_kind"], outage["error_code"], outage["count"]) == (
            "transient",
            503,
            50,
        )
        page = alice.get(f"{demo.url}/campaigns/{weekly_id}", timeout=10).text
        assert "<strong>190</strong> of <strong>240</strong> emails sent successfully" in page
        assert "Retry 50 recipients (3 attempts left)" in page

        vip = delivery(alice, demo.url, mine["VIP early access"][0])
        assert (vip["status"], vip["successful_sends"], vip["total_recipients"]) == (
            "FAILED",
            0,
            40,
        )
        assert "HTTP 429" in vip["failure_reason"]
        assert "try again after" in vip["failure_reason"]

        draft = delivery(alice, demo.url, mine["Spring sale preview"][0])
        assert draft["status"] == "DRAFT" and draft["attempts"] == []

        bob = demo.sign_in(BOB)
        his = campaign_rows(bob, demo.url)
        assert {name: status for name, (_, status) in his.items()} == BOB_CAMPAIGNS
        release = delivery(bob, demo.url, his["Release notes 4.2"][0])
        assert (release["status"], release["successful_sends"]) == ("SENT", 120)
        recap = delivery(bob, demo.url, his["October recap"][0])
        assert (recap["status"], recap["successful_sends"], recap["total_recipients"]) == (
            "PARTIALLY_SENT",
            96,
            150,
        )
        assert recap["retry"]["code"] == "window_expired"
        kinds = {group["failure_kind"]: group["count"] for group in recap["failures"]["groups"]}
        assert kinds == {"transient": 50, "permanent": 4}

        # Bob may not see, or act on, Alice's campaign: the host's page and the extension's
        # routes both answer 403.
        assert bob.get(f"{demo.url}/campaigns/{weekly_id}", timeout=10).status_code == 403
        refused = bob.get(
            f"{demo.url}/campaigns/{weekly_id}/delivery",
            headers={"Accept": "application/json"},
            timeout=10,
        )
        assert refused.status_code == 403
        token = csrf_token(bob.get(demo.url + "/", timeout=10).text)
        retry = bob.post(
            f"{demo.url}/campaigns/{weekly_id}/retry",
            headers={"Accept": "application/json", "X-CSRFToken": token},
            timeout=10,
        )
        assert retry.status_code == 403
        assert delivery(alice, demo.url, weekly_id)["status"] == "PARTIALLY_SENT"


def test_with_redis_url_a_real_worker_process_does_the_sending(
    tmp_path: Path, redis_url: str
) -> None:
    queue = f"newsletter-{uuid.uuid4().hex[:10]}"
    with running_demo(
        tmp_path,
        REDIS_URL=redis_url,
        FLASK_CAMPAIGN_RETRY_QUEUE=queue,
        FLASK_CAMPAIGN_RETRY_SANDBOX_LATENCY="0",
    ) as demo:
        assert "with a `flask campaign-retry worker` process" in demo.log()
        alice = demo.sign_in(ALICE)
        weekly_id = campaign_rows(alice, demo.url)["Weekly digest #12"][0]
        page = alice.get(f"{demo.url}/campaigns/{weekly_id}", timeout=10).text
        started = alice.post(
            f"{demo.url}/campaigns/{weekly_id}/retry",
            headers={"Accept": "application/json", "X-CSRFToken": csrf_token(page)},
            timeout=10,
        )
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 30
        report = delivery(alice, demo.url, weekly_id)
        while report["status"] == "SENDING" and time.monotonic() < deadline:
            time.sleep(0.3)
            report = delivery(alice, demo.url, weekly_id)
        assert report["status"] == "SENT", demo.log()
        assert (report["successful_sends"], report["total_recipients"]) == (240, 240)
        manual = report["attempts"][-1]
        assert (manual["trigger"], manual["triggered_by"], manual["targeted"]) == (
            "manual",
            ALICE[0],
            50,
        )


def _flask(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    env.update(
        PYTHONPATH=f"{EXAMPLE}{os.pathsep}{REPO}",
        FLASK_APP="newsletter",
        FLASK_SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
    )
    return subprocess.run(
        [sys.executable, "-m", "flask", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrations_build_the_schema_and_autogenerate_finds_nothing_new(tmp_path: Path) -> None:
    """`flask db upgrade` on an empty SQLite file builds every table (the app's, the mixin's
    columns and the extension's), and a second autogenerate would find no change."""
    missing = subprocess.run([sys.executable, "-c", "import flask_login"], check=False)
    if missing.returncode:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-r", str(EXAMPLE / "requirements.txt")],
            check=True,
        )
    database = tmp_path / "fresh.db"
    upgrade = _flask("db", "upgrade", database=database)
    assert upgrade.returncode == 0, upgrade.stderr
    check = _flask("db", "check", database=database)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr

    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        columns = {row[1] for row in conn.execute("PRAGMA table_info(campaign)")}
    assert {
        "campaign",
        "subscriber",
        "campaign_retry_recipient",
        "campaign_retry_batch",
        "campaign_retry_attempt",
    } <= tables
    assert {"status", "failed_at", "retry_count", "max_retries", "cloned_from_id"} <= columns


def test_demo_provider_smtp_sends_over_smtp_to_the_sink(tmp_path: Path) -> None:
    """`DEMO_PROVIDER=smtp make demo`: the seed still comes from the sandbox, and a send made
    in the served app goes over SMTP to the sink run-demo.sh started."""
    with running_demo(tmp_path, DEMO_PROVIDER="smtp", DEMO_SMTP_PORT=str(free_port())) as demo:
        assert "Provider:   SMTP (MAIL_SERVER=127.0.0.1:" in demo.log()
        assert "smtp sink listening on 127.0.0.1:" in demo.log()
        alice = demo.sign_in(ALICE)
        mine = campaign_rows(alice, demo.url)
        assert {name: status for name, (_, status) in mine.items()} == ALICE_CAMPAIGNS
        draft_id = mine["Spring sale preview"][0]
        page = alice.get(f"{demo.url}/campaigns/{draft_id}", timeout=10).text
        started = alice.post(
            f"{demo.url}/campaigns/{draft_id}/send",
            headers={"Accept": "application/json", "X-CSRFToken": csrf_token(page)},
            timeout=10,
        )
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        report = delivery(alice, demo.url, draft_id)
        while report["status"] in ("SENDING", "DRAFT") and time.monotonic() < deadline:
            time.sleep(0.3)
            report = delivery(alice, demo.url, draft_id)
        assert report["status"] in ("SENT", "PARTIALLY_SENT"), demo.log()
        assert report["successful_sends"] > 0
        codes = {group["error_code"] for group in report["failures"]["groups"]}
        assert codes <= {550}  # only the sink's refusals of @bounce.example.com, per recipient
