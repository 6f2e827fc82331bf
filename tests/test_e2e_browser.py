"""End to end in a real browser: Debian's Chromium, driven by Playwright, against the example
newsletter app started the way `make demo` starts it.

Alice opens her PARTIALLY_SENT campaign, reads the panel, presses Retry and watches the panel
go SENDING -> SENT; she clones her FAILED campaign and lands on the new draft. Bob gets 403 on
Alice's campaign. Screenshots go to test-artifacts/e2e/; the panel's is docs/panel.png (written
when missing, or refreshed with FCR_UPDATE_DOCS_SCREENSHOT=1).

No browser is downloaded: Playwright drives /usr/bin/chromium (`make test` apt-installs it).
Outside CI the tests skip when Chromium or Playwright is missing; in CI (CI=true) they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_demo import ALICE, BOB, IN_CI, REPO, Demo, campaign_rows, running_demo

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # reported by the `browser` fixture
    sync_playwright = None

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
#: This machine's network is closed: no background connections, updates or sync. Playwright
#: adds --headless and gives every launch a fresh, empty --user-data-dir of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
DOCS_PANEL = REPO / "docs" / "panel.png"
#: Seconds per simulated provider call: long enough to see a retry SENDING.
PROVIDER_LATENCY = "2"
#: The panel polls every 5 s while SENDING and reloads once the attempt has ended.
SETTLE_MS = 30_000


def _missing() -> list[str]:
    missing = []
    if not CHROMIUM.exists():
        missing.append(
            "Debian's chromium is not installed at /usr/bin/chromium "
            "(`make browser` or `apt-get install -y chromium`)"
        )
    if sync_playwright is None:
        missing.append("the playwright package is not installed (`pip install -e '.[test]'`)")
    return missing


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = _missing()
    if missing:
        message = "Browser tests need " + " and ".join(missing) + "."
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, timeout=30_000
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Demo]:
    tmp_path = tmp_path_factory.mktemp("newsletter-e2e")
    with running_demo(tmp_path, FLASK_CAMPAIGN_RETRY_SANDBOX_LATENCY=PROVIDER_LATENCY) as app:
        yield app


@pytest.fixture(scope="module")
def alice_ids(demo: Demo) -> dict[str, int]:
    return {name: cid for name, (cid, _) in campaign_rows(demo.sign_in(ALICE), demo.url).items()}


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    fresh = browser.new_context(viewport={"width": 1100, "height": 900})
    fresh.set_default_timeout(15_000)
    yield fresh
    fresh.close()


def shot(target: Page | Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if hasattr(target, "goto"):
        target.screenshot(path=str(path), full_page=True)
    else:
        target.screenshot(path=str(path))
    return path


def sign_in(context: BrowserContext, demo: Demo, account: tuple[str, str]) -> Page:
    page = context.new_page()
    page.goto(demo.url + "/login")
    page.get_by_label("Email").fill(account[0])
    page.get_by_label("Password").fill(account[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Campaigns", exact=True)).to_be_visible()
    return page


def open_campaign(page: Page, name: str) -> None:
    page.get_by_role("table").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)


def test_retry_in_the_panel_goes_through_sending_to_sent(
    context: BrowserContext, demo: Demo
) -> None:
    page = sign_in(context, demo, ALICE)
    open_campaign(page, "Weekly digest #12")
    panel = page.locator(".cr-panel")
    expect(panel).to_have_attribute("data-cr-status", "PARTIALLY_SENT")

    progress = panel.locator(".cr-progress").inner_text().strip()
    counts = re.fullmatch(r"(\d+) of (\d+) emails sent successfully\.", progress)
    assert counts, progress
    sent, total = int(counts[1]), int(counts[2])
    assert 0 < sent < total
    retry = panel.get_by_role(
        "button", name=re.compile(r"^Retry \d+ recipients? \(\d+ attempts? left\)$")
    )
    label = re.fullmatch(
        r"Retry (\d+) recipients? \((\d+) attempts? left\)", retry.inner_text().strip()
    )
    assert label, retry.inner_text()
    assert (int(label[1]), int(label[2])) == (total - sent, 3)
    expect(panel.locator(".cr-failed-recipients tbody tr").first).to_contain_text(
        "temporary failure"
    )
    panel_png = shot(panel, "panel-partially-sent")
    if not DOCS_PANEL.exists() or os.environ.get("FCR_UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_PANEL.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(panel_png, DOCS_PANEL)

    polls: list[str] = []
    page.on(
        "request", lambda request: polls.append(request.url) if "/delivery" in request.url else None
    )
    retry.click()
    # The extension redirects the form post back to this page, now SENDING ...
    expect(page.locator(".flash--success")).to_contain_text("Retry started (attempt 2)")
    panel = page.locator(".cr-panel")
    expect(panel).to_have_attribute("data-cr-status", "SENDING")
    expect(panel.locator(".cr-badge")).to_have_text("Sending")
    shot(page, "retry-sending")
    # ... and the panel's own script polls the delivery route and reloads once it has ended.
    expect(page.locator(".cr-panel")).to_have_attribute("data-cr-status", "SENT", timeout=SETTLE_MS)
    assert polls, "the panel never polled the delivery route"
    panel = page.locator(".cr-panel")
    expect(panel.locator(".cr-progress")).to_have_text(
        f"{total} of {total} emails sent successfully."
    )
    expect(panel.get_by_role("button", name=re.compile(r"^Retry"))).to_have_count(0)
    history = panel.locator(".cr-attempt-history tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(1)).to_contain_text("manual")
    expect(history.nth(1)).to_contain_text(ALICE[0])
    shot(page, "retry-sent")


def test_clone_of_the_failed_campaign_lands_on_the_new_draft(
    context: BrowserContext, demo: Demo, alice_ids: dict[str, int]
) -> None:
    page = sign_in(context, demo, ALICE)
    open_campaign(page, "VIP early access")
    panel = page.locator(".cr-panel")
    expect(panel).to_have_attribute("data-cr-status", "FAILED")
    expect(panel.locator(".cr-failure-reason")).to_contain_text("HTTP 429")
    shot(page, "clone-failed-campaign")

    original = alice_ids["VIP early access"]
    panel.get_by_role("button", name="Clone to a new draft").click()
    page.wait_for_url(re.compile(r"/campaigns/\d+$"))
    page.wait_for_url(lambda url: not url.endswith(f"/campaigns/{original}"))
    draft_id = int(page.url.rsplit("/", 1)[1])
    assert draft_id not in alice_ids.values()
    expect(page.get_by_role("heading", level=1)).to_contain_text("VIP early access")
    expect(page.locator("h1 .badge")).to_have_text("draft")
    expect(page.locator(".cloned-from")).to_contain_text(f"VIP early access (#{original})")
    expect(page.get_by_role("button", name="Send to 40 recipients")).to_be_enabled()
    shot(page, "clone-new-draft")


def test_another_user_gets_403_on_a_campaign_that_is_not_theirs(
    context: BrowserContext, demo: Demo, alice_ids: dict[str, int]
) -> None:
    page = sign_in(context, demo, BOB)
    expect(page.get_by_role("table")).not_to_contain_text("Weekly digest #12")
    alices = alice_ids["Weekly digest #12"]
    response = page.goto(f"{demo.url}/campaigns/{alices}")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("403")
    expect(page.locator(".cr-panel")).to_have_count(0)
    shot(page, "forbidden")
    report = page.goto(f"{demo.url}/campaigns/{alices}/delivery")
    assert report is not None and report.status == 403
