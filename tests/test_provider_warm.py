"""``MailgunProvider.warm()``: the SDK client is built before a worker forks and inherited by
its work horses, but a client a process has sent through is never reused by its forks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from flask_campaign_retry.providers.base import BatchRecipient, BatchRef, OutgoingMessage
from flask_campaign_retry.providers.mailgun.provider import MailgunProvider
from flask_campaign_retry.testing.fake_mailgun import FakeMailgun

MESSAGE = OutgoingMessage(subject="Hi", from_address="news@example.com", text="Hello")
REF = BatchRef(campaign_id=1, attempt_id=1, batch_id=1)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMailgun]:
    with FakeMailgun(domain="mg.example.com") as server:
        yield server


def _provider(fake: FakeMailgun) -> MailgunProvider:
    return MailgunProvider(fake.api_key, fake.domain, api_url=fake.url)


def _in_child(check: Callable[[], bool]) -> bool:
    """Run ``check`` in a forked child process and return its answer."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            answer = b"1" if check() else b"0"
        except BaseException:
            answer = b"E"
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer in (b"0", b"1"), "the child failed"
    return answer == b"1"


def test_warm_builds_the_client_without_a_request_and_sending_uses_it(fake: FakeMailgun) -> None:
    fake.reset()
    provider = _provider(fake)
    provider.warm()
    warmed = provider._client
    assert warmed is not None
    assert fake.request_count == 0
    provider.send_batch(MESSAGE, [BatchRecipient(1, "ann@example.org")], REF)
    assert provider._client is warmed
    assert fake.request_count == 1


def test_a_fork_inherits_a_warmed_client_but_not_one_its_parent_used(fake: FakeMailgun) -> None:
    fake.reset()
    provider = _provider(fake)
    provider.warm()
    warmed = provider._client
    assert _in_child(lambda: provider._sdk_client() is warmed)
    provider.send_batch(MESSAGE, [BatchRecipient(1, "ann@example.org")], REF)  # the parent uses it
    assert provider._client is warmed
    assert _in_child(lambda: provider._sdk_client() is not warmed)
    assert provider._sdk_client() is warmed  # the parent keeps its own
