"""``flask campaign-retry ...``: workers and the campaign operations, from a terminal.

The commands are thin wrappers over the functions the routes use (the :class:`CampaignRetry`
methods, :func:`web.lookup.load_campaign`, :func:`web.report.delivery_report`). They do not ask the
``authorize`` hook: whoever runs the CLI already holds the app's configuration. A refusal or an
unknown id is a :class:`click.ClickException` (message on stderr, exit status 1).
"""

from __future__ import annotations

import getpass
import json
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from flask_campaign_retry.campaign_fields import fields
from flask_campaign_retry.clock import isoformat_utc
from flask_campaign_retry.errors import (
    ConfigurationError,
    InvalidScheduleTime,
    QueueUnavailable,
    TransitionRefused,
)
from flask_campaign_retry.queue.resilient import run_resilient_worker
from flask_campaign_retry.recovery.sweep import recover, schedule_recovery
from flask_campaign_retry.state import AppState, get_state
from flask_campaign_retry.web.cli_embedded import (
    run_campaign_here,
    run_queue_here,
    uses_embedded_queue,
)
from flask_campaign_retry.web.lookup import id_problem, load_campaign
from flask_campaign_retry.web.report import delivery_report

cli_group = AppGroup(
    "campaign-retry", help="Run workers and send, retry, clone or inspect campaigns."
)


def _actor() -> str:
    """Who triggered an attempt from the CLI, for the attempt log ("cli:<os user>")."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _campaign(state: AppState, campaign_id: str) -> Any:
    problem = id_problem(state, campaign_id)
    if problem is not None:
        raise click.ClickException(f"There is no campaign with id {campaign_id[:40]!r}: {problem}.")
    campaign = load_campaign(state, campaign_id)
    if campaign is None:
        raise click.ClickException(f"There is no campaign with id {campaign_id!r}.")
    return campaign


@cli_group.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--simple", is_flag=True, help="Run jobs in this process instead of forking.")
@click.option("--name", default=None, help="Worker name (default: RQ's generated name).")
def worker_command(burst: bool, simple: bool, name: str | None) -> None:
    """Work the app's queue; every job runs inside this app's context (scheduler included).

    A recovery sweep runs first (work a dead worker left behind), and a scheduled sweep chain
    is started if none is running. Redis and database outages are ridden out: the worker
    waits for both with backoff (logging each try), sweeps again and resumes.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if uses_embedded_queue(get_state()):
        click.echo(
            "Error: `flask campaign-retry worker` needs Redis: set CAMPAIGN_RETRY_REDIS_URL "
            "(without it, the web process runs an embedded development queue).",
            err=True,
        )
        click.get_current_context().exit(2)

    def on_connected() -> None:
        report = recover()
        if any(report.as_dict().values()):
            click.echo(f"recovery: {json.dumps(report.as_dict())}")
        schedule_recovery(app)

    run_resilient_worker(app, on_connected=on_connected, burst=burst, simple=simple, name=name)


@cli_group.command("recover")
def recover_command() -> None:
    """Run one recovery sweep now: expire dead workers' batches, reconcile, finalize, requeue."""
    report = recover()
    click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    state = get_state()
    if uses_embedded_queue(state):
        run_queue_here(current_app._get_current_object(), state)  # type: ignore[attr-defined]


@cli_group.command("status")
@click.argument("campaign_id")
@click.option("--json", "as_json", is_flag=True, help="Print the full delivery report as JSON.")
def status_command(campaign_id: str, as_json: bool) -> None:
    """Show where CAMPAIGN_ID's delivery stands."""
    state = get_state()
    report = delivery_report(state, _campaign(state, campaign_id))
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    for line in summary_lines(report):
        click.echo(line)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The human summary ``status`` prints (one fact per line)."""
    lines = [
        f"Campaign {report['id']}: {report['status']}",
        f"{report['successful_sends']} of {report['total_recipients']} emails sent successfully"
        f" ({report['delivered_count']} confirmed delivered)",
    ]
    if report.get("scheduled_at") and report["status"] == "SCHEDULED":
        lines.append(f"Scheduled for: {report['scheduled_at']}")
    counts = ", ".join(f"{name} {n}" for name, n in report["recipients"].items() if n)
    if counts:
        lines.append(f"Recipients: {counts}")
    if report["failure_reason"]:
        lines.append(f"Failure reason: {report['failure_reason']}")
    if report["failed_at"]:
        lines.append(f"Failed at: {report['failed_at']}")
    retry = report["retry"]
    if retry["allowed"]:
        lines.append(
            f"Retry: possible until {retry['deadline']}, {retry['attempts_left']} attempts left,"
            f" {retry['retryable']} recipients to retry"
        )
    else:
        lines.append(f"Retry: not possible: {retry['reason']}")
    if report["next_auto_retry_at"]:
        lines.append(f"Next automatic retry: {report['next_auto_retry_at']}")
    for attempt in report["attempts"]:
        lines.append(
            f"  attempt {attempt['number']} ({attempt['trigger']}"
            f"{', by ' + attempt['triggered_by'] if attempt['triggered_by'] else ''})"
            f" {attempt['started_at']}: {attempt['outcome'] or 'running'};"
            f" {attempt['sent']} sent, {attempt['failed']} failed,"
            f" {attempt['uncertain']} unknown, {attempt['skipped']} skipped"
        )
    return lines


@cli_group.command("send")
@click.argument("campaign_id")
def send_command(campaign_id: str) -> None:
    """Start sending the DRAFT or SCHEDULED campaign CAMPAIGN_ID."""
    state = get_state()
    campaign = _campaign(state, campaign_id)
    try:
        attempt = state.extension.send(campaign, triggered_by=_actor())
    except (TransitionRefused, ConfigurationError, QueueUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Sending started: campaign {campaign.id}, attempt {attempt.number}.")
    _finish_here(state, campaign.id)


@cli_group.command("retry")
@click.argument("campaign_id")
@click.option(
    "--include-uncertain",
    is_flag=True,
    help="Also resend to recipients whose outcome is unknown (they may get it twice).",
)
def retry_command(campaign_id: str, include_uncertain: bool) -> None:
    """Retry Send: resend CAMPAIGN_ID to the recipients who did not get it."""
    state = get_state()
    campaign = _campaign(state, campaign_id)
    try:
        attempt = state.extension.retry(
            campaign, include_uncertain=include_uncertain, triggered_by=_actor()
        )
    except (TransitionRefused, ConfigurationError, QueueUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Retry started: campaign {campaign.id}, attempt {attempt.number}.")
    _finish_here(state, campaign.id)


def _finish_here(state: AppState, campaign_id: Any) -> None:
    """On the embedded queue, run the work to completion in this process and say how it
    ended (with Redis, workers do it and the command returns at once)."""
    if not uses_embedded_queue(state):
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    campaign = run_campaign_here(app, state, campaign_id)
    for line in summary_lines(delivery_report(state, campaign))[:3]:
        click.echo(line)


@cli_group.command("clone")
@click.argument("campaign_id")
@click.option("--only-unsent", is_flag=True, help="Only the recipients who did not get it.")
def clone_command(campaign_id: str, only_unsent: bool) -> None:
    """Copy CAMPAIGN_ID into a new DRAFT and print the new id."""
    state = get_state()
    campaign = _campaign(state, campaign_id)
    try:
        copy = state.extension.clone(campaign, only_unsent=only_unsent)
    except (TransitionRefused, ConfigurationError) as exc:
        raise click.ClickException(str(exc)) from None
    detail = f" with {fields(copy).total_recipients} recipients" if only_unsent else ""
    click.echo(f"Cloned campaign {campaign.id} into draft {copy.id}{detail}.")


@cli_group.command("schedule")
@click.argument("campaign_id")
@click.argument("when", required=False)
@click.option("--cancel", is_flag=True, help="Cancel the schedule (back to DRAFT).")
def schedule_command(campaign_id: str, when: str | None, cancel: bool) -> None:
    """Send CAMPAIGN_ID at WHEN (ISO 8601 with a zone, e.g. 2026-12-24T09:00:00Z).

    A SCHEDULED campaign moves to the new time; with --cancel it goes back to DRAFT.
    """
    state = get_state()
    if cancel == (when is not None):
        raise click.UsageError("Give either WHEN or --cancel.")
    campaign = _campaign(state, campaign_id)
    try:
        if cancel:
            state.extension.cancel_schedule(campaign)
            click.echo(f"Schedule of campaign {campaign.id} cancelled: it is a draft again.")
            return
        at = state.extension.schedule(campaign, when)
    except (TransitionRefused, ConfigurationError, InvalidScheduleTime) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Campaign {campaign.id} scheduled for {isoformat_utc(at)}.")
