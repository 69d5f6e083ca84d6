"""The README's worksheet loop (section "The worksheet loop"), run with its own jq programs on
the service's own answers: the answer lands inside the group the Questionnaire nests it in (where
a validator and Smart Forms look for it), and the next call decides with it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.compose import create_dev_app
from cds_service.policy_store import Knowledge
from cds_service.settings import Settings
from tests.test_fhir_validation import assert_valid_r4

README = Path(__file__).parent.parent / "README.md"
SIGN, PACKAGE = "/cds-services/dli-hpc-order-sign", "/fhir/Questionnaire/$questionnaire-package"


@pytest.fixture(scope="module")
def dev(knowledge: Knowledge) -> Iterator[TestClient]:
    app = create_dev_app(Settings(), knowledge)
    try:
        yield TestClient(app)
    finally:
        app.state.audit.close()


def recipe() -> list[str]:
    """The numbered lines of the README's worksheet-loop code block."""
    text = README.read_text("utf-8")
    block = text[text.index("### The worksheet loop") :].split("```bash\n", 1)[1].split("```")[0]
    return block.splitlines()


def jq(step: str, given: Any, **files: Any) -> Any:
    """Run the jq program of the recipe line marked `# <step>.` on `given`, as the README does."""
    if shutil.which("jq") is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("jq is needed (.ci/run installs it)")
        pytest.skip("jq is not installed")
    line = next(line for line in recipe() if f"# {step}." in line)
    program = re.search(r"jq (?:--slurpfile \w+ \S+ )?'(.+?)' \S+\.json", line)
    assert program is not None, line
    args = [a for name, value in files.items() for a in ("--argjson", name, json.dumps([value]))]
    run = subprocess.run(
        ["jq", *args, program.group(1)],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout)


def nesting(items: list[dict[str, Any]], parent: str = "") -> list[tuple[str, str]]:
    """(parent linkId, linkId) of every item, in document order."""
    found = []
    for item in items:
        found.append((parent, item["linkId"]))
        found += nesting(item.get("item", []), item["linkId"])
    return found


def structure_problems(response: dict[str, Any], questionnaire: dict[str, Any]) -> list[str]:
    """Every response item under the same parent as in the Questionnaire, in its order."""
    expected = nesting(questionnaire["item"])
    position = {pair: i for i, pair in enumerate(expected)}
    got = nesting(response.get("item", []))
    problems = [f"{link} is not under {parent or 'the top level'}" for parent, link in got
                if (parent, link) not in position]  # fmt: skip
    order = [position[pair] for pair in got if pair in position]
    if order != sorted(order):
        problems.append("items are out of the Questionnaire's order")
    return problems


def test_the_worksheet_recipe_answers_inside_the_group_and_decides(dev: TestClient) -> None:
    spec = json.loads(re.search(r"S='(\{.*?\})'", recipe()[0]).group(1))  # type: ignore[union-attr]
    request = dev.post("/sandbox/api/request", json=spec).json()["request"]
    first = dev.post(SIGN, json=request).json()
    task = first["cards"][0]["suggestions"][0]["actions"][0]["resource"]
    assert "/molina-dli|" in task["input"][0]["valueCanonical"]  # 1. the worksheet it needs
    parameters = dev.post("/sandbox/api/package", json=spec).json()["parameters"]
    package = dev.post(PACKAGE, json=parameters).json()
    questionnaire, prefilled = (e["resource"] for e in package["parameter"][0]["resource"]["entry"])
    done = jq("3", prefilled)
    assert structure_problems(done, questionnaire) == []
    assert_valid_r4(done)  # what the recipe has an integrator write is valid R4
    assert "molina-dli-planned-prevention" in [link for _, link in nesting(done["item"])]
    again = jq("4", request, qr=done)
    second = dev.post(SIGN, json=again).json()
    determination = second["cards"][0]["extension"]["dli-hpc-cds.evaluations"][0]
    assert determination["determination"] == "meets-criteria"


def test_the_old_recipe_shape_is_caught(dev: TestClient) -> None:
    """The answer at the top level (the recipe before issue 20) breaks the nesting check."""
    spec = {"scenario": "prophylactic-dli-ric", "payer": "molina-mcp-210"}
    parameters = dev.post("/sandbox/api/package", json=spec).json()["parameters"]
    package = dev.post(PACKAGE, json=parameters).json()
    questionnaire, prefilled = (e["resource"] for e in package["parameter"][0]["resource"]["entry"])
    assert structure_problems(prefilled, questionnaire) == []  # the service's own pre-fill nests
    flat = {**prefilled, "item": [*prefilled["item"], {"linkId": "molina-dli-planned-prevention"}]}
    assert structure_problems(flat, questionnaire) == [
        "molina-dli-planned-prevention is not under the top level"
    ]
