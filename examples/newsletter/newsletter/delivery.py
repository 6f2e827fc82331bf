"""How flask-campaign-retry talks to this app: the hooks registered on ``retry``.

These few functions are all a host writes: who gets a campaign, what they get, who may act on
it, and who is acting. From ``retry.send(campaign)`` on, the extension owns the sending.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from flask import has_request_context
from flask_login import current_user

from flask_campaign_retry import OutgoingMessage

from .extensions import db, retry
from .models import Campaign, Subscriber, User

#: Subscribers read per query while the extension freezes a campaign's recipient list.
PAGE_SIZE = 1000


def signed_in_user() -> User | None:
    """The user of the current request, or None (anonymous, or no request: a worker, the CLI)."""
    if not has_request_context() or not current_user.is_authenticated:
        return None
    user: User = current_user._get_current_object()
    return user


@retry.recipients_loader
def campaign_recipients(campaign: Campaign) -> Iterator[dict[str, Any]]:
    """The list's current subscribers, a page at a time (keyset on the primary key).

    Called once, at the first send: the extension freezes this list, so a retry goes to the
    same people even if the list changes afterwards.
    """
    last_id = 0
    while True:
        page = db.session.execute(
            sa.select(Subscriber.id, Subscriber.email, Subscriber.first_name)
            .where(
                Subscriber.list_id == campaign.list_id,
                Subscriber.unsubscribed_at.is_(None),
                Subscriber.id > last_id,
            )
            .order_by(Subscriber.id)
            .limit(PAGE_SIZE)
        ).all()
        if not page:
            return
        for row in page:
            yield {"email": row.email, "variables": {"first_name": row.first_name or "there"}}
        last_id = page[-1].id


@retry.message_builder
def campaign_message(campaign: Campaign) -> OutgoingMessage:
    """The content every recipient gets; %recipient.first_name% is filled per recipient."""
    return OutgoingMessage(
        subject=campaign.subject,
        from_address=campaign.from_address,
        html=campaign.html or None,
        text=campaign.text or None,
        tags=["newsletter"],
    )


@retry.authorize
def may_act_on(campaign: Campaign, action: str) -> bool:
    """Owners may view, send, retry and clone their own campaigns; nobody else may."""
    user = signed_in_user()
    return user is not None and campaign.owner_id == user.id


@retry.current_user
def acting_user() -> str | None:
    """Recorded as "By" in the attempt history."""
    user = signed_in_user()
    return user.email if user is not None else None


@retry.exclude_recipients
def unsubscribed_since(campaign: Campaign, emails: list[str]) -> Iterable[str]:
    """Before every batch: skip whoever left the list after the recipient list was frozen."""
    return db.session.scalars(
        sa.select(Subscriber.email).where(
            Subscriber.list_id == campaign.list_id,
            Subscriber.email.in_(emails),
            Subscriber.unsubscribed_at.is_not(None),
        )
    ).all()


@retry.clone_fields
def copied_by_clone(campaign: Campaign) -> Iterable[str]:
    """A clone copies the content and the list; status, counters and created_at start afresh."""
    return Campaign.CONTENT_FIELDS
