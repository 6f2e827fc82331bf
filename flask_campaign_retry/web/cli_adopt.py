"""``flask campaign-retry adopt``: mark the campaigns a host sent before adopting as SENT."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from flask_campaign_retry.errors import ConfigurationError
from flask_campaign_retry.policy.adoption import adopt_sent
from flask_campaign_retry.state import get_state


@click.command("adopt")
@click.option(
    "--sent-where",
    required=True,
    help="SQL condition on your campaign table that is true for sent campaigns, "
    'e.g. "sent_at IS NOT NULL".',
)
@click.option("--dry-run", is_flag=True, help="Only list the campaigns; change nothing.")
@with_appcontext
def adopt_command(sent_where: str, dry_run: bool) -> None:
    """Mark as SENT the DRAFT campaigns the extension never touched that SENT_WHERE selects."""
    try:
        adoption = adopt_sent(get_state(), sent_where, dry_run=dry_run)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    ids = ", ".join(str(one) for one in adoption.campaign_ids) or "none"
    if dry_run:
        click.echo(
            f"Would mark {adoption.count} campaign(s) SENT (dry run, nothing changed): {ids}."
        )
    else:
        click.echo(f"Marked {adoption.count} campaign(s) SENT: {ids}.")
