"""Stable entry of admin-alert jobs queued by 0.1.x (`webhook_delivery.deliver`).

New jobs use :func:`flask_campaign_retry.jobs.deliver_admin_alert`; this module only lets
deliveries that were already waiting in Redis when the package was upgraded still run.
"""

from __future__ import annotations

from flask_campaign_retry.jobs import deliver_admin_alert


def deliver(delivery_id: int) -> str:
    """Run an admin-alert delivery enqueued under the 0.1.x path."""
    return deliver_admin_alert(delivery_id)
