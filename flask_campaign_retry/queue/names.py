"""Dotted paths of the RQ entry points in :mod:`flask_campaign_retry.jobs`.

Work is enqueued by these names, so the modules that enqueue a job never import the function
that runs it. The paths are stable: jobs already waiting in a Redis when the package is upgraded
still resolve.
"""

PREPARE_JOB = "flask_campaign_retry.jobs.prepare_attempt"
BATCH_JOB = "flask_campaign_retry.jobs.send_batch"
AUTO_RETRY_JOB = "flask_campaign_retry.jobs.auto_retry_campaign"
RECOVERY_JOB = "flask_campaign_retry.jobs.recover"
ALERT_JOB = "flask_campaign_retry.jobs.deliver_admin_alert"
SCHEDULE_JOB = "flask_campaign_retry.jobs.start_scheduled_campaign"
REFRESH_JOB = "flask_campaign_retry.jobs.refresh_campaign"
