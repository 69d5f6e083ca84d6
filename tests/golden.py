"""Golden answers: the full hook responses for every scenario, as reviewed data.

Each scenario's file in tests/golden/ holds, for its own Coverage and for no Coverage (the all-payer
comparison), the order-sign and order-select responses to both draft orders. Card uuids and coverage-assertion
ids are replaced by their order of first appearance, so the files depend only on behaviour.

tests/golden/primary-hooks/ holds, per scenario, the appointment-book and order-dispatch answers
for the same orders (signed, then booked / sent): appointment-book for a CRD 2.0.1 and a CRD 2.2
client (the coverage information goes on the Appointment in 2.0.1 and on the ServiceRequest in
2.2), order-dispatch for a CRD 2.0.1 client (2.2 differs from it only as order-sign's 2.2 form
does), and each without a Coverage (CRD hook-13's 400). A separate file, so that the existing
files (whose uuid numbering follows the order of their keys) stay as they were.

Regenerate after a deliberate change, and read the diff it prints before committing:

    .venv/bin/python -m tests.golden
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cds_service.core.model import Service
from cds_service.scenarios import Scenario, build_request, load_scenarios, service_id

GOLDEN_DIR = Path(__file__).parent / "golden"
# order-sign all-payers is the 400 of CRD hook-13 (core/payer_scope.py); the comparison of every
# payer's policy is order-select all-payers.
_ASKED = (
    ("order-sign", "own-coverage"),
    ("order-sign", "all-payers"),
    ("order-select", "own-coverage"),
    ("order-select", "all-payers"),
)
PRIMARY_DIR = GOLDEN_DIR / "primary-hooks"
_ASKED_PRIMARY = (
    ("appointment-book", "own-coverage", "2.0.1"),
    ("appointment-book", "own-coverage", "2.2"),
    ("appointment-book", "all-payers", "2.0.1"),
    ("order-dispatch", "own-coverage", "2.0.1"),
    ("order-dispatch", "all-payers", "2.0.1"),
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _normalise(text: str) -> str:
    seen: dict[str, str] = {}
    return _UUID.sub(lambda m: seen.setdefault(m.group(0), f"uuid-{len(seen) + 1}"), text)


def _post(client: TestClient, request: dict[str, Any]) -> Any:
    response = client.post(f"/cds-services/{service_id(request['hook'])}", json=request)
    return {"status": response.status_code, "body": response.json()}


def responses(client: TestClient, scenario: Scenario) -> dict[str, Any]:
    """The responses the golden file holds, keyed by how they were asked for."""
    answers: dict[str, Any] = {}
    for hook, payer in _ASKED:
        request = build_request(scenario.bundle(), hook, tuple(Service))
        if payer == "all-payers":
            request["prefetch"]["coverage"] = None
        answers[f"{hook} {payer}"] = _post(client, request)
    return answers


def primary_responses(client: TestClient, scenario: Scenario) -> dict[str, Any]:
    """The appointment-book and order-dispatch answers, keyed "hook payer crd-version"."""
    answers: dict[str, Any] = {}
    for hook, payer, crd in _ASKED_PRIMARY:
        request = build_request(scenario.bundle(), hook, tuple(Service))
        if payer == "all-payers":
            request["prefetch"]["coverage"] = None
        if crd == "2.2":
            request["extension"] = {"davinci-crd.requestedVersion": "2.2"}
        answers[f"{hook} {payer} {crd}"] = _post(client, request)
    return answers


def render(client: TestClient, scenario: Scenario, primary: bool = False) -> str:
    answers = (primary_responses if primary else responses)(client, scenario)
    text = json.dumps(answers, indent=1, sort_keys=True, ensure_ascii=False)
    return _normalise(text) + "\n"


def golden_path(scenario: Scenario, primary: bool = False) -> Path:
    return (PRIMARY_DIR if primary else GOLDEN_DIR) / f"{scenario.id}.json"


def diff(expected: str, actual: str, name: str) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        f"golden/{name}",
        f"now/{name}",
    )
    return "".join(lines)


def main() -> int:
    """Rewrite every golden file and print what changed."""
    from tests.conftest import make_client

    # The app keeps an audit log; keep it out of the working copy.
    os.environ["CDS_DATA_DIR"] = tempfile.mkdtemp(prefix="golden-")
    PRIMARY_DIR.mkdir(parents=True, exist_ok=True)
    changed = 0
    with make_client() as client:
        scenarios = load_scenarios()
        for scenario in scenarios:
            for primary in (False, True):
                path = golden_path(scenario, primary)
                old = path.read_text(encoding="utf-8") if path.exists() else ""
                new = render(client, scenario, primary)
                if old != new:
                    changed += 1
                    sys.stdout.write(diff(old, new, path.name))
                    path.write_text(new, encoding="utf-8")
        known = {golden_path(s).name for s in scenarios}
        for folder in (GOLDEN_DIR, PRIMARY_DIR):
            for stale in sorted(p for p in folder.glob("*.json") if p.name not in known):
                changed += 1
                sys.stdout.write(f"removed {stale.name} (no such scenario)\n")
                stale.unlink()
    sys.stdout.write(f"{changed} of {2 * len(scenarios)} golden files changed\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
