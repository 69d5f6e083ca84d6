"""The published scenario matrix (docs/scenarios.md) is generated and must not go stale."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cds_service.cli import app
from cds_service.matrix import REGENERATE, render_matrix
from cds_service.policy_store import Knowledge
from cds_service.scenarios import FIXTURES_DIR, load_scenarios

COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"


def test_the_committed_matrix_is_current(knowledge: Knowledge) -> None:
    expected = render_matrix(load_scenarios(), knowledge.policies)
    assert COMMITTED.read_text(encoding="utf-8") == expected, (
        f"docs/scenarios.md is stale: regenerate it with `.venv/bin/{REGENERATE}`"
    )


def test_rows_are_fixtures_and_cells_are_determinations(knowledge: Knowledge) -> None:
    text = render_matrix(load_scenarios(), knowledge.policies)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(load_scenarios()) == len(list(FIXTURES_DIR.glob("*.yaml")))
    header = next(line for line in text.splitlines() if line.startswith("| Scenario"))
    assert header.count("DLI · ") == 5 and header.count("HPC boost · ") == 5
    aml = next(r for r in rows if r.startswith("| `relapsed-aml-allo-mac`"))
    cells = [c.strip() for c in aml.strip("|").split(" | ")]
    # anthem, bcbsms, centene, molina (the fixture's payer: bold), wellmark; DLI then HPC boost
    assert cells[2:7] == ["✅ meets", "✅ meets", "✅ meets", "**✅ meets**", "✅ meets"]
    assert cells[7:10] == ["➖ not addressed"] * 3
    no_payer = next(r for r in rows if r.startswith("| `myeloma-auto-then-car-t-no-counts`"))
    assert "none (all five)" in no_payer and "**" not in no_payer


def test_the_cli_writes_or_prints_the_matrix(tmp_path: Path, knowledge: Knowledge) -> None:
    expected = render_matrix(load_scenarios(), knowledge.policies)
    runner = CliRunner()
    target = tmp_path / "scenarios.md"
    result = runner.invoke(app, ["matrix", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == expected
    printed = runner.invoke(app, ["matrix"])
    assert printed.exit_code == 0 and printed.output == expected
