"""The newsletter's pages: campaigns (list, detail, new, edit, send) and mailing lists."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from flask_campaign_retry import EmailStatus, QueueUnavailable, TransitionRefused

from .extensions import db, retry
from .forms import CampaignForm
from .models import Campaign, MailingList, Subscriber

bp = Blueprint("pages", __name__)

#: Campaigns whose delivery panel the campaign list shows right away.
NEEDS_ATTENTION = (EmailStatus.SENDING, EmailStatus.PARTIALLY_SENT, EmailStatus.FAILED)
EDITABLE = (EmailStatus.DRAFT, EmailStatus.SCHEDULED)


@bp.before_request
@login_required
def require_login() -> None:
    """Every page here needs a signed-in user."""


def own_campaign(campaign_id: int) -> Campaign:
    """The current user's campaign: 404 if there is none, 403 if it is someone else's."""
    campaign = db.get_or_404(Campaign, campaign_id)
    if campaign.owner_id != current_user.id:
        abort(403, "This campaign belongs to another account.")
    return campaign


def own_lists() -> list[MailingList]:
    return list(
        db.session.scalars(
            sa.select(MailingList)
            .where(MailingList.owner_id == current_user.id)
            .order_by(MailingList.name)
        )
    )


def subscriber_counts(list_ids: list[int]) -> dict[int, int]:
    rows = db.session.execute(
        sa.select(Subscriber.list_id, sa.func.count())
        .where(Subscriber.list_id.in_(list_ids), Subscriber.unsubscribed_at.is_(None))
        .group_by(Subscriber.list_id)
    ).all()
    return {list_id: count for list_id, count in rows}


@bp.get("/")
def campaigns() -> ResponseReturnValue:
    rows = list(
        db.session.scalars(
            sa.select(Campaign)
            .where(Campaign.owner_id == current_user.id)
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        )
    )
    attention = [c for c in rows if c.status in NEEDS_ATTENTION]
    return render_template("campaigns.html", campaigns=rows, attention=attention)


@bp.get("/campaigns/<int:campaign_id>")
def campaign(campaign_id: int) -> ResponseReturnValue:
    item = own_campaign(campaign_id)
    audience = subscriber_counts([item.list_id]).get(item.list_id, 0)
    origin = db.session.get(Campaign, item.cloned_from_id) if item.cloned_from_id else None
    return render_template(
        "campaign.html",
        campaign=item,
        audience=audience,
        origin=origin,
        editable=item.status in EDITABLE,
    )


def _campaign_form(form: CampaignForm) -> CampaignForm:
    form.list_id.choices = [(each.id, each.name) for each in own_lists()]
    return form


@bp.route("/campaigns/new", methods=["GET", "POST"])
def new_campaign() -> ResponseReturnValue:
    form = _campaign_form(CampaignForm(from_address=f"{current_user.name} <{current_user.email}>"))
    if form.validate_on_submit():
        item = Campaign(owner_id=current_user.id)
        form.populate_obj(item)
        db.session.add(item)
        db.session.commit()
        flash("Draft saved.", "success")
        return redirect(url_for("pages.campaign", campaign_id=item.id))
    return render_template("campaign_form.html", form=form, campaign=None)


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
def edit_campaign(campaign_id: int) -> ResponseReturnValue:
    item = own_campaign(campaign_id)
    if item.status not in EDITABLE:
        flash("Only drafts can be edited; clone this campaign to change it.", "error")
        return redirect(url_for("pages.campaign", campaign_id=item.id))
    form = _campaign_form(CampaignForm(obj=item))
    if form.validate_on_submit():
        form.populate_obj(item)
        db.session.commit()
        flash("Draft saved.", "success")
        return redirect(url_for("pages.campaign", campaign_id=item.id))
    return render_template("campaign_form.html", form=form, campaign=item)


@bp.post("/campaigns/<int:campaign_id>/send-now")
def send_campaign(campaign_id: int) -> ResponseReturnValue:
    """The app's own Send button: from here on the extension owns the sending."""
    item = own_campaign(campaign_id)
    try:
        retry.send(item)
    except (TransitionRefused, QueueUnavailable) as refusal:
        flash(refusal.reason, "error")  # not sendable, or Redis down: nothing changed
    else:
        flash("Sending started.", "success")
    return redirect(url_for("pages.campaign", campaign_id=item.id), 303)


@bp.get("/lists")
def lists() -> ResponseReturnValue:
    rows = own_lists()
    counts = subscriber_counts([each.id for each in rows])
    return render_template("lists.html", lists=rows, counts=counts)


@bp.get("/lists/<int:list_id>")
def mailing_list(list_id: int) -> ResponseReturnValue:
    item = db.get_or_404(MailingList, list_id)
    if item.owner_id != current_user.id:
        abort(403, "This list belongs to another account.")
    subscribers = list(
        db.session.scalars(
            sa.select(Subscriber).where(Subscriber.list_id == item.id).order_by(Subscriber.id)
        )
    )
    return render_template("list.html", mailing_list=item, subscribers=subscribers)
