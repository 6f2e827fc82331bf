"""The extension reaches every mixin field through ``campaign_fields``, never by its own name.

The host app of the suite can be built with every mixin field renamed (``cr_status``, ...;
``FCR_TEST_RENAMED_COLUMNS=1`` in tests/hostapp.py), where the package reading or writing
``campaign.status`` itself fails the test that made it. This runs the suite's most end-to-end
tests (send, partial failure, retries manual and automatic, clones, signals, the panel, the JSON
API) that way in a subprocess; any access the conversion missed shows up as a failure here.
The whole suite passes that way too: ``FCR_TEST_RENAMED_COLUMNS=1 pytest -k "not postgres"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
END_TO_END = [
    "tests/test_promised_retry_and_clone.py",
    "tests/test_promised_signals_and_api.py",
    "tests/test_promised_auto_retry.py",
    "tests/test_panel.py",
]


@pytest.mark.skipif(
    os.environ.get("FCR_TEST_RENAMED_COLUMNS") == "1", reason="already the renamed run"
)
def test_the_end_to_end_tests_pass_with_every_mixin_field_renamed(redis_url: str) -> None:
    # Same Redis database as this session, which must not be flushed under it; every test
    # uses queue names of its own.
    env = dict(
        os.environ,
        FCR_TEST_RENAMED_COLUMNS="1",
        FCR_TEST_REDIS_NO_FLUSH="1",
        PYTHONPATH=str(ROOT),
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-k", "sqlite"]
    result = subprocess.run(
        [*command, *END_TO_END],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
