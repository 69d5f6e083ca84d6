"""Golden answers: the full hook responses for every scenario, as reviewed data.

Each scenario's file in tests/golden/ holds, for its own Coverage and for no Coverage (the all-payer
comparison), the order-sign and order-select responses to both draft orders. Card uuids and coverage-assertion
ids are replaced by their order of first appearance, so the files depend only on behaviour.

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


def render(client: TestClient, scenario: Scenario) -> str:
    text = json.dumps(responses(client, scenario), indent=1, sort_keys=True, ensure_ascii=False)
    return _normalise(text) + "\n"


def golden_path(scenario: Scenario) -> Path:
    return GOLDEN_DIR / f"{scenario.id}.json"


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
    GOLDEN_DIR.mkdir(exist_ok=True)
    changed = 0
    with make_client() as client:
        scenarios = load_scenarios()
        for scenario in scenarios:
            path = golden_path(scenario)
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            new = render(client, scenario)
            if old != new:
                changed += 1
                sys.stdout.write(diff(old, new, path.name))
                path.write_text(new, encoding="utf-8")
        known = {golden_path(s).name for s in scenarios}
        for stale in sorted(p for p in GOLDEN_DIR.glob("*.json") if p.name not in known):
            changed += 1
            sys.stdout.write(f"removed {stale.name} (no such scenario)\n")
            stale.unlink()
    sys.stdout.write(f"{changed} of {len(scenarios)} golden files changed\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
