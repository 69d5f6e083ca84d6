"""A newcomer's first run: the README names every tool its commands use and where the policy
texts come from, a missing policy-text folder skips with its cause and remedy, the start-up
log shows no unrendered templates, and `GET /` (tests/test_operations.py) points onwards."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from cds_service.audit.store import AuditStore
from cds_service.cli import app as cli
from cds_service.logs import JsonFormatter
from tests.policy_texts import missing_reason

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def test_the_readme_names_every_tool_its_commands_use() -> None:
    commands = " ".join(_bash_blocks(README))
    used = {tool for tool in ("curl", "jq", "sudo", "apt-get") if re.search(rf"\b{tool}\b", commands)}
    assert {"curl", "jq"} <= used
    setup = README[README.index("## Set up") : README.index("## Try it")]
    for tool in ("curl", "jq", "chromium"):
        assert f"`{tool}`" in setup, f"{tool} is used by the README's commands: name it in Set up"


def test_the_readme_says_where_the_policy_texts_come_from() -> None:
    setup = README[README.index("## Set up") : README.index("## Try it")]
    assert "shared/policies" in setup and "CDS_POLICY_TEXTS" in setup


def test_the_skip_without_policy_texts_names_cause_and_remedy(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env |= {"CDS_POLICY_TEXTS": str(missing), "COLUMNS": "400"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-vv", "-p", "no:cacheprovider",
         "tests/test_citations.py", "-k", "every_quoted_phrase"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 skipped" in result.stdout
    assert missing_reason(missing) in result.stdout  # the folder looked in, and the remedy


def test_migration_log_lines_are_rendered_not_templates(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    alembic = logging.getLogger("alembic")
    level = alembic.level
    alembic.addHandler(handler)
    alembic.setLevel(logging.INFO)
    store = AuditStore(URL.create("sqlite", database=str(tmp_path / "audit.sqlite3")))
    try:
        store.migrate()
    finally:
        store.close()
        alembic.removeHandler(handler)
        alembic.setLevel(level)
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert any(e.startswith("Running upgrade 0003 -> 0004") for e in events), events
    assert not [e for e in events if "%s" in e or "%d" in e]


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under `command` (a click group: Typer may vendor its own click)."""
    found = [path]
    for name, sub in (getattr(command, "commands", None) or {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_flags_are_shown_as_flags_in_every_commands_help() -> None:
    """A flag's help shows no value placeholder (`<bool>`): it takes none, as it says."""
    root = typer.main.get_command(cli)
    runner = CliRunner()
    for path in _commands(root):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
    refused = runner.invoke(cli, ["audit", "stats", "--json=yes"])
    assert refused.exit_code == 2 and "does not take a value" in refused.output
