"""What the ``campaign_retry/panel.html`` partial shows, computed from just the campaign.

Hosts write ``{% include "campaign_retry/panel.html" %}`` with ``campaign`` in the context. The
partial calls the template global ``campaign_retry_panel(campaign)``, which returns a
:class:`PanelView`: the delivery report, the retry verdict, one page of failed recipients,
the host's authorization for each action, the route URLs and a CSRF token. The template only
lays these out, so a host that overrides it keeps every rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import current_app, has_request_context, request, url_for

from flask_campaign_retry.campaign_fields import fields
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.engine.preview import RetryPreview, retry_preview
from flask_campaign_retry.policy.eligibility import (
    RETRYABLE_CAMPAIGN_STATUSES,
    RetryEligibility,
    retry_eligibility,
)
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.statuses import EmailStatus, RecipientStatus
from flask_campaign_retry.web.lookup import MAX_INTEGER_ID
from flask_campaign_retry.web.options import load_web_options
from flask_campaign_retry.web.panel_text import (
    KIND_LABELS,
    STATUS_LABELS,
    display_time,
    remaining_text,
)
from flask_campaign_retry.web.report import RecipientPage, delivery_report, failed_recipients_page
from flask_campaign_retry.web.security import csrf_field_name, csrf_token, is_allowed

#: While SENDING the panel's script polls the delivery route this often (milliseconds).
REFRESH_INTERVAL_MS = 5000
PAGE_SIZE = 20
PANEL_ACTIONS = ("view", "send", "retry", "clone")


@dataclass(frozen=True)
class PanelView:
    """Everything ``panel.html`` renders; see the module docstring."""

    campaign_id: Any
    status: str
    status_label: str
    report: dict[str, Any]
    eligibility: RetryEligibility
    with_uncertain: RetryEligibility | None
    can: dict[str, bool]
    authorize_registered: bool
    urls: dict[str, str]
    failed: RecipientPage
    failed_total: int
    page_param: str
    next_page_url: str | None
    first_page_url: str | None
    csrf_field: str
    csrf_token: str | None
    back_url: str | None
    now: datetime
    stylesheet_url: str | None = None
    refresh_ms: int = REFRESH_INTERVAL_MS
    scheduled_at: datetime | None = None
    preview: RetryPreview | None = None

    @property
    def scheduled(self) -> bool:
        return self.status == EmailStatus.SCHEDULED

    @property
    def retry_button_text(self) -> str:
        """ "Retry 50 recipients (2 attempts left)" when a retry can start, else
        "Retry (0 attempts left)" beside the reason it cannot."""
        if self.preview is not None and self.retry_enabled and self.preview.would_send:
            return self.preview.button_text
        if self.retry_enabled or self.eligibility.code == "no_attempts_left":
            return f"Retry ({self.attempts_left_text})"
        return "Retry"  # the reason beside it says why; attempts left are beside the point

    @property
    def running_attempt(self) -> dict[str, Any] | None:
        """The attempt in progress while SENDING (its own progress, not the last one's)."""
        attempts = self.report.get("attempts") or []
        if self.sending and attempts and not attempts[-1].get("ended_at"):
            return dict(attempts[-1])
        return None

    @property
    def provider_resume_at(self) -> str | None:
        """The provider's "try again after" time of the last attempt, while it is ahead."""
        attempts = self.report.get("attempts") or []
        paused = attempts[-1].get("paused_until") if attempts else None
        if paused and datetime.fromisoformat(str(paused).removesuffix("Z")) > self.now:
            return str(paused)
        return None

    def outcome_label(self, outcome: str | None) -> str:
        """Words for an attempt's outcome ("PARTIALLY_SENT" -> "Partially sent")."""
        if not outcome:
            return ""
        try:
            return STATUS_LABELS[EmailStatus(outcome)]
        except ValueError:
            return outcome

    @property
    def sending(self) -> bool:
        return self.status == EmailStatus.SENDING

    @property
    def show_retry(self) -> bool:
        """The retry control appears for statuses where a retry is or may become possible."""
        return self.status in (*RETRYABLE_CAMPAIGN_STATUSES, EmailStatus.SENDING)

    @property
    def show_send(self) -> bool:
        return self.status in (EmailStatus.DRAFT, EmailStatus.SCHEDULED)

    @property
    def show_clone(self) -> bool:
        return self.status in (*RETRYABLE_CAMPAIGN_STATUSES, EmailStatus.SENT)

    @property
    def not_received(self) -> int:
        counts = self.report["recipients"]
        return int(
            counts[RecipientStatus.FAILED]
            + counts[RecipientStatus.UNCERTAIN]
            + counts[RecipientStatus.PENDING]
        )

    @property
    def retry_enabled(self) -> bool:
        allowed = self.eligibility.allowed or bool(
            self.with_uncertain and self.with_uncertain.allowed
        )
        return allowed and self.can["retry"]

    @property
    def retry_disabled_reason(self) -> str | None:
        """Why the retry button is disabled, in words; None when it is enabled."""
        if self.retry_enabled:
            return None
        if not self.can["retry"]:
            return "You are not allowed to retry this campaign."
        return self.eligibility.reason

    @property
    def attempts_left_text(self) -> str:
        left = self.eligibility.attempts_left
        return f"{left} attempt{'' if left == 1 else 's'} left"

    @property
    def remaining(self) -> str:
        deadline = self.eligibility.deadline
        return remaining_text(deadline - self.now) if deadline is not None else ""

    def when(self, value: datetime | str | None) -> str:
        """Format a time for people (the template's only formatting helper)."""
        return display_time(value)

    def kind_label(self, kind: str | None) -> str:
        """Words for a failure kind ("transient" -> "temporary failure")."""
        return KIND_LABELS.get(kind or "", "failed")

    def iso(self, value: datetime | None) -> str:
        return "" if value is None else value.isoformat(timespec="seconds") + "Z"


def _page_urls(
    param: str, after: int | None, page: RecipientPage, *, anchor: str
) -> tuple[str | None, ...]:
    """Keyset links of the failed-recipients table; they land on the table (``#anchor``),
    not on the top of the host's page."""
    if not has_request_context():
        return None, None
    args = [(key, value) for key, value in request.args.items(multi=True) if key != param]

    def link(cursor: int | None) -> str:
        query = urlencode(args + ([(param, str(cursor))] if cursor is not None else []))
        return request.path + (f"?{query}" if query else "") + f"#{anchor}"

    next_url = link(page.next_after) if page.next_after is not None else None
    first_url = link(None) if after is not None else None
    return next_url, first_url


def _cursor(param: str) -> int | None:
    if not has_request_context():
        return None
    raw = request.args.get(param, "")
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_INTEGER_ID:
        return int(raw)
    return None


def build_panel(state: AppState, campaign: Any, *, now: datetime | None = None) -> PanelView:
    """Compute the :class:`PanelView` of ``campaign`` for the current request."""
    now = now or utcnow()
    can = {
        action: is_allowed(state, campaign, action) for action in ("view", "send", "retry", "clone")
    }
    eligibility = retry_eligibility(state, campaign, now=now)
    report = (
        delivery_report(state, campaign, now=now, eligibility=eligibility)
        if can["view"]
        else _empty_report(campaign)
    )
    with_uncertain = (
        retry_eligibility(state, campaign, include_uncertain=True, now=now)
        if eligibility.uncertain
        else None
    )
    page_param = f"cr_failed_{campaign.id}"
    after = _cursor(page_param)
    failed = (
        failed_recipients_page(state, campaign, after=after, limit=PAGE_SIZE)
        if can["view"]
        else RecipientPage([], None)
    )
    next_page_url, first_page_url = _page_urls(
        page_param, after, failed, anchor=f"cr-failures-{campaign.id}"
    )
    status = EmailStatus(fields(campaign).status)
    preview = (
        retry_preview(state, campaign, limit=1)
        if can["view"] and status in RETRYABLE_CAMPAIGN_STATUSES
        else None
    )
    counts = report["recipients"]
    urls = {
        name: url_for(f"campaign_retry.{name}", campaign_id=str(campaign.id))
        for name in ("retry", "clone", "send", "delivery", "schedule")
    }
    return PanelView(
        campaign_id=campaign.id,
        status=status.value,
        status_label=STATUS_LABELS[status],
        report=report,
        eligibility=eligibility,
        with_uncertain=with_uncertain,
        can=can,
        authorize_registered=state.extension.hooks.authorize is not None,
        urls=urls,
        failed=failed,
        failed_total=counts[RecipientStatus.FAILED] + counts[RecipientStatus.UNCERTAIN],
        page_param=page_param,
        next_page_url=next_page_url,
        first_page_url=first_page_url,
        csrf_field=csrf_field_name(),
        csrf_token=csrf_token() if has_request_context() else None,
        back_url=request.full_path.rstrip("?") if has_request_context() else None,
        now=now,
        stylesheet_url=_stylesheet_url(),
        scheduled_at=getattr(fields(campaign), "scheduled_at", None),
        preview=preview,
    )


def _stylesheet_url() -> str | None:
    if not has_request_context() or not load_web_options(current_app.config).panel_stylesheet:
        return None
    return url_for("campaign_retry.static", filename="campaign_retry/panel.css")


def _empty_report(campaign: Any) -> dict[str, Any]:
    """The shape of a report with nothing in it, for a viewer the host does not allow."""
    return {
        "id": campaign.id,
        "recipients": {status.value: 0 for status in RecipientStatus},
        "failures": {"groups": [], "other": 0},
        "attempts": [],
    }


def campaign_retry_panel(campaign: Any) -> PanelView:
    """Template global behind ``{% include "campaign_retry/panel.html" %}``."""
    return build_panel(get_state(), campaign)
