"""Claims hold under concurrency (real worker processes), and no secret leaks anywhere."""

from __future__ import annotations

import contextlib
import logging
import zlib
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask

from flask_campaign_retry import EmailStatus
from flask_campaign_retry.engine.batch_job import run_batch
from flask_campaign_retry.engine.sending import BATCH_JOB
from flask_campaign_retry.providers.sandbox.rules import FaultRule
from flask_campaign_retry.state import get_state
from tests import hostapp
from tests.helpers import campaign_with, drain, emails, prepare_only, reload, start_worker


def test_two_worker_processes_racing_never_submit_a_recipient_twice(
    make_app: Any, mailgun: Any, database_url: str, redis_url: str
) -> None:
    app = make_app(CAMPAIGN_RETRY_BATCH_SIZE=50)
    with app.app_context():
        addresses = emails(1000)
        campaign = campaign_with(addresses)
        batch_ids = prepare_only(app, campaign)
        assert len(batch_ids) == 20
        # Every batch job is enqueued twice more: three jobs per batch for two workers.
        backend = get_state().queue(app)
        backend.enqueue_many(BATCH_JOB, batch_ids)
        backend.enqueue_many(BATCH_JOB, batch_ids)
        assert backend.queue.count == 60
        workers = [start_worker(app, burst=True) for _ in range(2)]
        for worker in workers:
            assert worker.wait(timeout=120) == 0
        accepted = mailgun.accepted_emails()
        assert set(accepted) == set(addresses)
        assert set(accepted.values()) == {1}
        assert mailgun.request_count == 20
        campaign = reload(campaign)
        assert campaign.status is EmailStatus.SENT
        assert campaign.successful_sends == 1000


def test_threads_racing_on_one_batch_submit_it_once(app: Flask, mailgun: Any) -> None:
    import threading

    campaign = campaign_with(emails(300))
    batch_ids = prepare_only(app, campaign)
    results: list[str] = []

    def run(batch_id: int) -> None:
        with app.app_context():
            results.append(run_batch(batch_id))

    threads = [threading.Thread(target=run, args=(batch_ids[0],)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("settled") == 1
    # A loser that skipped the winner's locked row (SKIP LOCKED) may still read it QUEUED and
    # look again a second later ("waiting"); either way it submits nothing.
    assert set(results) - {"settled"} <= {"not claimable", "waiting"}
    assert mailgun.request_count == 1
    assert set(mailgun.accepted_emails().values()) == {1}


def _job_payloads(url: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    blobs: list[bytes] = []
    for key in client.scan_iter("rq:job:*"):
        if client.type(key) != b"hash":
            continue
        for value in client.hgetall(key).values():
            blobs.append(value)
            with contextlib.suppress(zlib.error):  # not every field is compressed
                blobs.append(zlib.decompress(value))
    return blobs


def test_no_api_key_in_logs_error_columns_or_job_payloads(
    make_app: Any, mailgun: Any, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_key = "sk-Wr0ngButSecret-9f8e7d6c5b4a"
    caplog.set_level(logging.DEBUG)
    for key, fault in ((mailgun.api_key, FaultRule(status=500)), (wrong_key, None)):
        mailgun.clear_faults()
        if fault is not None:
            mailgun.add_fault(fault)
        app = make_app(
            MAILGUN_API_KEY=key, CAMPAIGN_RETRY_BATCH_SIZE=5, CAMPAIGN_RETRY_AUTO_RETRY=False
        )
        with app.app_context():
            campaign = campaign_with(emails(12, prefix=f"k{len(key)}"), list_name=key[:8])
            hostapp.retry.send(campaign)
            drain(app)
            assert reload(campaign).status is EmailStatus.FAILED
            state = get_state()
            texts: list[str] = []
            for model in (state.models.recipient, state.models.batch, state.models.attempt):
                for row in hostapp.db.session.execute(sa.select(model.__table__)).mappings():
                    texts.extend(str(value) for value in row.values())
            texts.extend(
                str(v)
                for v in hostapp.db.session.execute(sa.select(hostapp.Campaign.__table__))
                .mappings()
                .all()
            )
            joined = "\n".join(texts)
            assert key not in joined
            assert "500" in joined or "API key" in joined  # the errors were recorded
            blobs = _job_payloads(redis_url)
            assert blobs, "expected RQ job hashes to inspect"
            assert all(key.encode() not in blob for blob in blobs)
    logged = "\n".join(
        record.getMessage() + repr(getattr(record, "campaign_retry", "")) + repr(record.args)
        for record in caplog.records
    )
    assert "provider call" in logged
    assert mailgun.api_key not in logged and wrong_key not in logged
