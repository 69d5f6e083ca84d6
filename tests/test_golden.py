"""Every scenario's full responses equal its reviewed golden file (tests/golden.py says how to
regenerate them)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cds_service.scenarios import Scenario, load_scenarios
from tests.golden import GOLDEN_DIR, PRIMARY_DIR, diff, golden_path, render

SCENARIOS = load_scenarios()


@pytest.mark.parametrize("primary", [False, True], ids=["order-hooks", "primary-hooks"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_response_equals_golden_file(client: TestClient, scenario: Scenario, primary: bool) -> None:
    """order-sign / order-select (tests/golden/), appointment-book / order-dispatch
    (tests/golden/primary-hooks/)."""
    path = golden_path(scenario, primary)
    assert path.exists(), "no golden file; run: .venv/bin/python -m tests.golden"
    expected, actual = path.read_text(encoding="utf-8"), render(client, scenario, primary)
    assert actual == expected, (
        "response differs from its golden file; if the change is intended, run "
        ".venv/bin/python -m tests.golden and review the diff:\n"
        + diff(expected, actual, path.name)[:6000]
    )


def test_no_golden_file_without_a_scenario() -> None:
    known = {golden_path(s).name for s in SCENARIOS}
    assert {p.name for p in GOLDEN_DIR.glob("*.json")} <= known
    assert {p.name for p in PRIMARY_DIR.glob("*.json")} <= known
