"""Redis down at the click: nothing changes, the user is told to try again (503), and the
work is queued exactly once when they do. Deterministic job ids let the recovery sweep requeue
lost work while the queue is busy, once however often it runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_campaign_retry import EmailStatus, QueueUnavailable
from flask_campaign_retry.clock import utcnow
from flask_campaign_retry.queue.job_ids import batch_job_id
from flask_campaign_retry.recovery.sweep import recover
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import attempts, batches, campaign_with, drain, emails, reload
from tests.private_redis import PrivateRedis
from tests.webapp import WEB_CONFIG, add_host_pages, csrf_token, draft, flashes, partially_sent

UNAVAILABLE = {
    "error": "service_unavailable",
    "code": "queue_unavailable",
    "reason": "The queue is unavailable, try again in a moment. Nothing was changed.",
    "status": 503,
}


@pytest.fixture
def down_app(make_app: Any, private_redis: PrivateRedis, authorize: Any) -> Any:
    app: Flask = make_app(**WEB_CONFIG, CAMPAIGN_RETRY_REDIS_URL=private_redis.url)
    add_host_pages(app)
    with app.app_context():
        yield app


def _snapshot(campaign: Any) -> tuple[Any, ...]:
    c = reload(campaign)
    return (
        c.status,
        c.retry_count,
        c.failure_reason,
        c.failed_at,
        c.current_attempt_id,
        c.next_auto_retry_at,
        len(attempts(c)),
    )


def _json(client: FlaskClient) -> dict[str, str]:
    return {"Accept": "application/json", "X-CSRFToken": csrf_token(client)}


def test_send_with_redis_down_changes_nothing_and_answers_503(
    down_app: Flask, private_redis: PrivateRedis, mailgun: Any
) -> None:
    client = down_app.test_client()
    campaign = draft(4)
    before = _snapshot(campaign)
    headers = _json(client)
    private_redis.stop()
    response = client.post(f"/campaigns/{campaign.id}/send", headers=headers)
    assert response.status_code == 503
    assert response.get_json() == UNAVAILABLE
    assert response.headers["Retry-After"] == "5"
    assert _snapshot(campaign) == before  # still DRAFT, no attempt row
    with pytest.raises(QueueUnavailable, match="try again"):
        hostapp.retry.send(reload(campaign))
    assert _snapshot(campaign) == before

    private_redis.start()  # back: the next click starts the send, once
    response = client.post(f"/campaigns/{campaign.id}/send", headers=_json(client))
    assert response.status_code == 202
    drain(down_app)
    assert reload(campaign).status is EmailStatus.SENT
    assert mailgun.accepted_emails() == {a: 1 for a in emails(4, prefix="main")}


def test_retry_with_redis_down_changes_nothing_and_answers_503(
    down_app: Flask, private_redis: PrivateRedis, mailgun: Any
) -> None:
    client = down_app.test_client()
    campaign = partially_sent(down_app, mailgun)
    before = _snapshot(campaign)
    assert before[0] is EmailStatus.PARTIALLY_SENT
    headers = _json(client)
    token = csrf_token(client)
    private_redis.stop()
    response = client.post(f"/campaigns/{campaign.id}/retry", headers=headers)
    assert (response.status_code, response.get_json()) == (503, UNAVAILABLE)
    assert _snapshot(campaign) == before  # retry_count, attempts, current attempt unchanged
    form = client.post(
        f"/campaigns/{campaign.id}/retry", data={"csrf_token": token, "next": "/host/x"}
    )
    assert (form.status_code, form.headers["Location"]) == (303, "/host/x")
    assert flashes(client)[-1] == ("error", UNAVAILABLE["reason"])
    with pytest.raises(QueueUnavailable):
        hostapp.retry.retry(reload(campaign))
    assert _snapshot(campaign) == before
    result = down_app.test_cli_runner().invoke(args=["campaign-retry", "retry", str(campaign.id)])
    assert result.exit_code == 1
    assert "The queue is unavailable, try again" in result.output
    assert _snapshot(campaign) == before

    private_redis.start()
    response = client.post(f"/campaigns/{campaign.id}/retry", headers=_json(client))
    assert response.status_code == 202
    drain(down_app)
    campaign = reload(campaign)
    assert campaign.status is EmailStatus.SENT
    assert campaign.retry_count == 1
    assert set(mailgun.accepted_emails().values()) == {1}


def test_the_sweep_requeues_a_lost_batch_job_while_the_queue_is_busy(
    make_app: Any, mailgun: Any
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=2)
    with app.app_context():
        campaign = campaign_with(emails(6))
        hostapp.retry.send(campaign)
        backend = get_state().queue(app)
        prepare = backend.queue.get_jobs()[0]
        backend.queue.remove(prepare)
        prepare.perform()  # three batch jobs queued under their deterministic ids
        first, second, third = (b.id for b in batches(campaign))
        queue_name = get_state().settings.queue_name
        lost = backend.job_class.fetch(
            batch_job_id(queue_name, second, 0), connection=backend.connection
        )
        lost.delete()  # the job of the second batch is gone (Redis restarted, say)
        assert backend.queue.count == 2  # the queue is busy with the other two

        later = utcnow() + timedelta(seconds=11)
        assert recover(now=later).requeued_batches == [second]
        assert backend.queue.count == 3
        # Idempotent: the job now waits, so further sweeps (or concurrent ones) queue nothing.
        assert recover(now=later).requeued_batches == []
        assert backend.queue.count == 3
        drain(app)
        assert reload(campaign).status is EmailStatus.SENT
        assert mailgun.accepted_emails() == {a: 1 for a in emails(6)}
        assert {first, third} < {b.id for b in batches(campaign)}


def test_a_stale_started_job_without_its_execution_records_is_replaced(app: Flask) -> None:
    """An abandoned job whose execution records are gone (its worker died, Redis lost keys)
    used to make RQ's delete raise and the sweep crash; it is replaced like any dead job."""
    backend = get_state().queue(app)
    job_id = "fcr-test-stale-started"
    job = backend.enqueue("flask_campaign_retry.jobs.recover", job_id=job_id)
    backend.queue.remove(job)
    job.set_status("started")
    backend.connection.zadd(backend.queue.started_job_registry.key, {f"{job_id}:gone": 1})
    # The job's execution registry names an execution whose record no longer exists.
    backend.connection.zadd(job.execution_registry.key, {"gone": 2**40})
    assert backend.live([job_id]) == set()  # its registry entry expired long ago
    assert backend.ensure("flask_campaign_retry.jobs.recover", job_id=job_id) is True
    assert backend.live([job_id]) == {job_id}
    assert backend.queue.job_ids == [job_id]
