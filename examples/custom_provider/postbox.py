"""A provider for Postbox, an imaginary HTTP email API (the README's "Writing a provider")."""

import requests

from flask_campaign_retry import FailureKind, ProviderError
from flask_campaign_retry.providers import RecipientOutcome, RecipientResult, RecipientResults

OUTCOMES = {"queued": "accepted", "rejected": "refused", "deferred": "deferred"}


class PostboxProvider:
    name = "postbox"

    def __init__(self, url, api_key):
        self.url, self.api_key = url, api_key
        self.cache_key = f"postbox:{url}"  # names the settings, never the secret

    @classmethod
    def from_config(cls, config):
        return cls(config["POSTBOX_URL"], config["POSTBOX_API_KEY"])

    def send_batch(self, message, recipients, ref):
        to = [{"email": r.email, "vars": dict(r.variables)} for r in recipients]
        body = {"from": message.from_address, "subject": message.subject, "to": to,
                "html": message.html, "text": message.text}  # fmt: skip
        auth = {"Authorization": f"Bearer {self.api_key}"}
        try:  # one request, no retries: the engine decides what happens next
            answer = requests.post(f"{self.url}/v1/send", json=body, headers=auth, timeout=30)
        except requests.ConnectionError as exc:  # refused or timed out connecting: not sent
            raise ProviderError(FailureKind.TRANSIENT, f"cannot reach Postbox: {exc}") from None
        except requests.RequestException as exc:  # sent, answer lost: maybe accepted
            raise ProviderError(FailureKind.UNCERTAIN, f"no answer from Postbox: {exc}") from None
        status = answer.status_code
        if status in (401, 429) or status >= 500:
            kind = {401: FailureKind.FATAL, 429: FailureKind.TRANSIENT}.get(status)
            text = f"Postbox answered {status}" + (": check POSTBOX_API_KEY" * (status == 401))
            raise ProviderError(kind or FailureKind.UNCERTAIN, text, code=status)
        ids = {r.email: r.id for r in recipients}
        return RecipientResults([
            RecipientResult(ids[item["email"]], RecipientOutcome(OUTCOMES[item["status"]]),
                            item.get("code"), item.get("reason"), item.get("id"))
            for item in answer.json()["results"]
        ])  # fmt: skip
