"""The README is executed literally: every config key and CLI command it names must exist,
and every key the package reads must be in its Configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import click
from flask import Flask

import flask_campaign_retry

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(flask_campaign_retry.__file__).resolve().parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
KEY = re.compile(r"\bCAMPAIGN_RETRY_[A-Z0-9_]*[A-Z0-9]\b")


def _configuration_table() -> set[str]:
    section = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(CAMPAIGN_RETRY_[A-Z0-9_]+)` \|", section, re.MULTILINE))


def _keys_read_by_package() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        found.update(KEY.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_key_the_package_reads_has_a_row_in_the_configuration_table() -> None:
    missing = _keys_read_by_package() - _configuration_table()
    assert not missing, f"add these keys to README's Configuration table: {sorted(missing)}"


def test_every_key_the_readme_names_exists_in_the_package() -> None:
    phantom = set(KEY.findall(README)) - _keys_read_by_package()
    assert not phantom, f"README names keys the package never reads: {sorted(phantom)}"


def test_every_cli_command_the_readme_names_exists(app: Flask) -> None:
    group = app.cli.get_command(click.Context(app.cli), "campaign-retry")
    assert isinstance(group, click.Group)
    commands = set(group.list_commands(click.Context(group)))
    named = set(re.findall(r"flask campaign-retry ([a-z][a-z-]*)", README))
    listed = re.search(r"`flask campaign-retry worker[^\n]*\n[^\n]*", README)
    assert listed is not None, "the CLI section lists the commands after `flask campaign-retry`"
    named.update(re.findall(r"`([a-z][a-z-]*) [A-Z\[]", listed.group(0)))
    unknown = named - commands
    assert not unknown, f"README names CLI commands that do not exist: {sorted(unknown)}"
    assert {"worker", "adopt", "schedule", "retry", "recover"} <= named
