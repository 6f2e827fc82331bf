"""``flask seed``: demo users, lists and campaigns in every state worth looking at.

Nothing is written as a status by hand: each campaign is sent through the extension to the
sandbox provider (whatever provider the served app uses), whose scripted failures
(``SEED_RULES``) produce the outcome. The one liberty
taken is moving one campaign's failure time back a day (see ``expire_retry_window``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from flask_campaign_retry import EmailStatus

from .extensions import db, retry
from .models import Campaign, MailingList, Subscriber, User, utcnow
from .settings import SANDBOX_RULES

#: The provider failures the seed sends run into. A rule fails a whole provider call (one
#: batch) when any of its addresses matches; ``times`` limits how often it fires.
SEED_RULES: list[dict[str, Any]] = [
    # A short provider outage: one call of the weekly digest gets a 503 (temporary failure).
    {"match": r"@inbox\.example\.net$", "status": 503, "times": 1},
    # The VIP list hits the sending quota: Mailgun's 429 "... try again after <date>".
    {"match": r"@vip\.example\.com$", "status": 429, "resume_in": 3600, "times": 1},
    # The October recap meets a 500 on one call.
    {"match": r"@archive\.example\.org$", "status": 500, "times": 1},
    # And, as always in this app, bounce.example.com addresses are refused for good.
    *SANDBOX_RULES,
]

#: How the seeding app differs from the served one. Its sends run on the embedded queue inside
#: this command, whatever queue the server uses, so the scripted failures hit exactly these
#: sends; automatic retry is off so that the failures wait for you to press Retry.
SEEDING: dict[str, Any] = {
    "CAMPAIGN_RETRY_REDIS_URL": None,
    "CAMPAIGN_RETRY_PROVIDER": "sandbox",  # even when the demo serves on SMTP
    "CAMPAIGN_RETRY_SANDBOX_RULES": SEED_RULES,
    "CAMPAIGN_RETRY_SANDBOX_LATENCY": 0.0,
    "CAMPAIGN_RETRY_AUTO_RETRY": False,
}

FIRST_NAMES = (
    "Ada", "Ben", "Chloé", "Dmitri", "Esther", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemi", "Luca", "Maya", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tariq",
)  # fmt: skip


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    password: str


ALICE = DemoUser("alice@example.com", "Alice Martin", "alice-demo")
BOB = DemoUser("bob@example.com", "Bob Okafor", "bob-demo")
DEMO_USERS = (ALICE, BOB)


@dataclass(frozen=True)
class ListSpec:
    owner: DemoUser
    name: str
    domains: tuple[str, ...]
    size: int
    unsubscribed: int = 0
    bounces: int = 0


@dataclass(frozen=True)
class CampaignSpec:
    owner: DemoUser
    list_name: str
    name: str
    subject: str
    paragraph: str
    send: bool = True


LISTS = (
    ListSpec(ALICE, "Weekly readers", ("mail.example.com", "inbox.example.net"), 240, 6),
    ListSpec(ALICE, "VIP customers", ("vip.example.com",), 40),
    ListSpec(BOB, "Product updates", ("mail.example.com", "post.example.org"), 120),
    # Four addresses the provider refuses, at the end of the list (in its last batch).
    ListSpec(BOB, "Archive readers", ("archive.example.org",), 146, bounces=4),
)
#: Sent in this order, one after the other; what each ends as comes from SEED_RULES.
CAMPAIGNS = (
    # PARTIALLY_SENT: one batch hit the 503, the rest went out; retryable.
    CampaignSpec(ALICE, "Weekly readers", "Weekly digest #12",
                 "This week: twelve things worth reading", "Our pick of the week's reading."),
    # FAILED: the provider's quota (429 with a resume time) refused the only batch.
    CampaignSpec(ALICE, "VIP customers", "VIP early access",
                 "Your early access starts today", "Shop the new collection before anyone."),
    # SENT: everyone accepted.
    CampaignSpec(BOB, "Product updates", "Release notes 4.2",
                 "Version 4.2 is out", "Faster exports, a dark theme and 23 fixes."),
    # PARTIALLY_SENT a day ago (see expire_retry_window): the retry window has ended.
    CampaignSpec(BOB, "Archive readers", "October recap",
                 "What happened in October", "Thirty-one days of news in five minutes."),
    CampaignSpec(ALICE, "Weekly readers", "Spring sale preview",
                 "A first look at the spring sale", "Next week the whole shop is 20% off.",
                 send=False),
)  # fmt: skip
EXPIRED = "October recap"


def add_user(person: DemoUser) -> User:
    user = User(email=person.email, name=person.name)
    user.set_password(person.password)
    db.session.add(user)
    db.session.flush()
    return user


def add_list(owner: User, spec: ListSpec) -> MailingList:
    """``spec.size`` subscribers spread over the domains, then those who left, then bounces."""
    mailing_list = MailingList(owner_id=owner.id, name=spec.name)
    db.session.add(mailing_list)
    db.session.flush()
    slug = spec.name.lower().split()[0]
    rows = [
        {
            "list_id": mailing_list.id,
            "email": f"{slug}-{n:03d}@{spec.domains[n % len(spec.domains)]}",
            "first_name": FIRST_NAMES[n % len(FIRST_NAMES)],
            "unsubscribed_at": utcnow() if n >= spec.size else None,
        }
        for n in range(spec.size + spec.unsubscribed)
    ]
    rows += [
        {"list_id": mailing_list.id, "email": f"{slug}-gone-{n}@bounce.example.com"}
        for n in range(spec.bounces)
    ]
    db.session.execute(sa.insert(Subscriber), rows)
    return mailing_list


def add_campaign(owner: User, mailing_list: MailingList, spec: CampaignSpec) -> Campaign:
    campaign = Campaign(
        owner_id=owner.id,
        list_id=mailing_list.id,
        name=spec.name,
        subject=spec.subject,
        from_address=f"{owner.name} <{owner.email}>",
        html=f"<h1>{spec.name}</h1><p>Hi %recipient.first_name%,</p><p>{spec.paragraph}</p>",
        text=f"{spec.name}\n\nHi %recipient.first_name%,\n\n{spec.paragraph}\n",
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign


def send_and_wait(campaign: Campaign, timeout: float = 60.0) -> Campaign:
    """Send through the extension and wait until the attempt has settled."""
    retry.send(campaign, triggered_by="seed")
    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        fresh = db.session.get(Campaign, campaign.id)
        if fresh is not None and fresh.status is not EmailStatus.SENDING:
            return fresh
        if time.monotonic() > deadline:
            raise click.ClickException(f"Campaign {campaign.id} is still sending after {timeout}s.")
        time.sleep(0.1)


def expire_retry_window(campaign: Campaign) -> None:
    """Honest time travel: the campaign really was sent and really failed a moment ago. Moving
    its times back past CAMPAIGN_RETRY_WINDOW shows how an expired retry window looks without
    waiting a day; nothing else about it is changed."""
    window = current_app.config["CAMPAIGN_RETRY_WINDOW"]
    if not isinstance(window, timedelta):
        window = timedelta(seconds=window)
    shift = window + timedelta(hours=1)
    attempts = retry.models().attempt
    for attempt in db.session.scalars(
        sa.select(attempts).where(attempts.campaign_id == campaign.id)
    ):
        attempt.started_at -= shift
        if attempt.ended_at is not None:
            attempt.ended_at -= shift
    campaign.created_at -= shift
    if campaign.failed_at is not None:
        campaign.failed_at -= shift
    if campaign.last_attempt_at is not None:
        campaign.last_attempt_at -= shift
    db.session.commit()


def seed_demo() -> list[Campaign]:
    """Create the demo data and send the campaigns; returns them (empty if already seeded)."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(User)):
        return []
    users = {person: add_user(person) for person in DEMO_USERS}
    lists = {spec.name: add_list(users[spec.owner], spec) for spec in LISTS}
    campaigns = [add_campaign(users[spec.owner], lists[spec.list_name], spec) for spec in CAMPAIGNS]
    db.session.commit()
    for spec, campaign in zip(CAMPAIGNS, campaigns, strict=True):
        if spec.send:
            sent = send_and_wait(campaign)
            if spec.name == EXPIRED:
                expire_retry_window(sent)
    return list(db.session.scalars(sa.select(Campaign).order_by(Campaign.id)))


def describe(campaign: Campaign) -> str:
    verdict = retry.retry_eligibility(campaign)
    sent = f"{campaign.successful_sends} of {campaign.total_recipients}"
    line = (
        f"  #{campaign.id:<3} {campaign.owner.email:<18} {campaign.name:<22} "
        f"{campaign.status.value:<15} {sent:>10}"
    )
    if campaign.status in (EmailStatus.FAILED, EmailStatus.PARTIALLY_SENT):
        line += " retry: " + ("possible" if verdict.allowed else str(verdict.code))
    return line


def seeding_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The served app's database with the seeding overrides."""
    return {"SQLALCHEMY_DATABASE_URI": config["SQLALCHEMY_DATABASE_URI"], **SEEDING}


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Create demo users, lists and campaigns (sent for real, to the sandbox provider)."""
    from . import create_app

    app = create_app(seeding_config(current_app.config))
    with app.app_context():
        campaigns = seed_demo()
        if not campaigns:
            click.echo("The database already has users: nothing seeded.")
            return
        subscribers = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
        click.echo(
            f"Seeded {len(DEMO_USERS)} users, {subscribers} subscribers and these campaigns:"
        )
        for campaign in campaigns:
            click.echo(describe(campaign))
    leave_now()


def leave_now() -> None:
    """End the process although the embedded queue's threads are still running.

    The embedded queue's fakeredis server serves each connection in a non-daemon thread, so
    a process that used it never exits on its own (the interpreter waits for those threads).
    Everything is committed and printed by now, so the seed leaves explicitly.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
