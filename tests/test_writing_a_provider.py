"""The README's example provider (examples/custom_provider/postbox.py) is real: the README
shows the file verbatim, and it sends a campaign through the engine against a fake Postbox."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.wrappers import Request, Response

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.testing.loopback_server import LoopbackServer
from tests import hostapp
from tests.helpers import campaign_with, drain, emails, recipient_rows, reload

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_provider" / "postbox.py"


def test_the_readme_shows_the_example_file_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- postbox.py -->\n```python\n(.*?)```", readme, re.S)
    assert found is not None, "README.md lost its Writing a provider example"
    assert found.group(1) == EXAMPLE.read_text()


class FakePostbox(LoopbackServer):
    """Queues every address except those at rejected.example.org (refused) and
    later.example.org (deferred)."""

    def __init__(self) -> None:
        super().__init__(name="fake-postbox")
        self.requests: list[dict[str, Any]] = []

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.headers.get("Authorization") != "Bearer pb-key":
            return Response("no", 401)(environ, start_response)
        body = request.get_json()
        self.requests.append(body)
        results = []
        for n, item in enumerate(body["to"]):
            email = item["email"]
            if email.endswith("@rejected.example.org"):
                results.append(
                    {"email": email, "status": "rejected", "code": 550, "reason": "no such user"}
                )
            elif email.endswith("@later.example.org"):
                results.append(
                    {"email": email, "status": "deferred", "code": 451, "reason": "busy"}
                )
            else:
                results.append(
                    {"email": email, "status": "queued", "id": f"pb-{len(self.requests)}-{n}"}
                )
        return Response(json.dumps({"results": results}), 200, content_type="application/json")(
            environ, start_response
        )


def test_the_example_provider_sends_a_campaign_with_per_recipient_outcomes(make_app: Any) -> None:
    with FakePostbox() as postbox:
        app: Flask = make_app(
            CAMPAIGN_RETRY_PROVIDER="examples.custom_provider.postbox:PostboxProvider",
            POSTBOX_URL=postbox.url,
            POSTBOX_API_KEY="pb-key",
            CAMPAIGN_RETRY_AUTO_RETRY=False,
        )
        with app.app_context():
            campaign = campaign_with(
                [*emails(4), "gone@rejected.example.org", "busy@later.example.org"]
            )
            hostapp.retry.send(campaign)
            drain(app)
            rows = recipient_rows(campaign)
            assert len(postbox.requests) == 1  # no bisection: the answer named each recipient
            assert {e: (r.status.value, r.error_code) for e, r in rows.items()} == {
                **{e: ("SENT", None) for e in emails(4)},
                "gone@rejected.example.org": ("FAILED", 550),
                "busy@later.example.org": ("FAILED", 451),
            }
            assert rows["gone@rejected.example.org"].failure_kind == "permanent"
            assert rows["busy@later.example.org"].failure_kind == "transient"
            assert rows[emails(4)[0]].provider_message_id == "pb-1-0"
            assert reload(campaign).status is EmailStatus.PARTIALLY_SENT


def test_a_wrong_key_stops_the_campaign(make_app: Any) -> None:
    with FakePostbox() as postbox:
        app: Flask = make_app(
            CAMPAIGN_RETRY_PROVIDER="examples.custom_provider.postbox:PostboxProvider",
            POSTBOX_URL=postbox.url,
            POSTBOX_API_KEY="wrong",
        )
        with app.app_context():
            campaign = campaign_with(emails(3))
            hostapp.retry.send(campaign)
            drain(app)
            campaign = reload(campaign)
            assert campaign.status is EmailStatus.FAILED
            assert "Postbox answered 401: check POSTBOX_API_KEY" in campaign.failure_reason
