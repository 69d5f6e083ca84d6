"""The CRD ext-coverage-information invariants, run by a FHIRPath engine we did not write.

tests/crd_invariants.json holds each invariant's expression verbatim from the CRD IG source (the
FSH at tags 2.0.1 and 2.2.1 the published StructureDefinitions are built from). fhirpath.js (npm
`fhirpath`, the HL7 / LHNCBC engine, with its R4 model so `value` resolves to `valueCode`; pinned
in tests/sdc/package-lock.json) evaluates each one on every coverage-information of every
scenario's order-sign answer, for a CRD 2.0.1 client (no requestedVersion) and a CRD 2.2 client:
each must be `[true]`; an empty result (what 2.0.1 crd-ci-q2 gave on `not-covered`) fails.

fhirpathpy cannot be that engine: it refuses FHIRPath's singleton evaluation of a collection as
a Boolean ("Expected boolean, got: {...}") on the IG's own `extension.where(...) implies ...`
(2.0.1 crd-ci-q2 and q4, 2.2 q4). 2.2 crd-ci-q7 calls `memberOf`, which needs a terminology
server: it is not run here (every reason we emit has text, which q7 accepts;
tests/conformance.py checks that by hand).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.core.cards import COVERAGE_INFO_URL
from cds_service.core.model import Service
from cds_service.scenarios import Scenario, build_request, load_scenarios, service_id
from tests.node import run_node

INVARIANTS = json.loads((Path(__file__).parent / "crd_invariants.json").read_text("utf-8"))
NEEDS_TERMINOLOGY = {"crd-ci-q7"}  # memberOf: a terminology server
SCENARIOS = load_scenarios()
VERSIONS = {"2.0.1": None, "2.2": "2.2"}  # CRD version -> davinci-crd.requestedVersion sent


def evaluate(items: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    """Each invariant of `version` on each Extension, as fhirpath.js returns it."""
    invariants = {
        key: invariant["expression"]
        for key, invariant in INVARIANTS["versions"][version]["invariants"].items()
        if key not in NEEDS_TERMINOLOGY
    }
    return evaluate_expressions(invariants, items)


def evaluate_expressions(
    invariants: dict[str, str], items: list[dict[str, Any]], base: str = "Extension"
) -> list[dict[str, Any]]:
    """Each FHIRPath expression (key -> expression) on each element of type `base`, as
    fhirpath.js returns it (tests/sdc/invariants.mjs)."""
    payload = {"invariants": invariants, "base": base, "items": items}
    results: list[dict[str, Any]] = run_node("invariants.mjs", payload, ("fhirpath",), 120)
    return results


def coverage_informations(client: TestClient, scenario: Scenario, version: str) -> list[Any]:
    """Every ext-coverage-information of the scenario's order-sign answer, both orders."""
    request = build_request(scenario.bundle(), "order-sign", tuple(Service))
    if VERSIONS[version] is not None:
        request["extension"] = {"davinci-crd.requestedVersion": VERSIONS[version]}
    response = client.post(f"/cds-services/{service_id('order-sign')}", json=request)
    if response.status_code == 400:  # no payer this service handles (core/payer_scope.py)
        return []
    assert response.status_code == 200, response.text
    return [
        extension
        for action in response.json().get("systemActions", [])
        for extension in action["resource"].get("extension", [])
        if extension["url"] == COVERAGE_INFO_URL
    ]


def failures(extension: dict[str, Any], version: str) -> list[str]:
    """The invariants of `version` whose expression is not exactly true on `extension`."""
    [results] = evaluate([extension], version)
    return [f"{key} = {result}" for key, result in results.items() if result != [True]]


@pytest.mark.parametrize("version", list(VERSIONS))
def test_every_coverage_information_satisfies_its_versions_invariants(
    client: TestClient, version: str
) -> None:
    found = [
        (scenario.id, extension)
        for scenario in SCENARIOS
        for extension in coverage_informations(client, scenario, version)
    ]
    results = evaluate([extension for _, extension in found], version)
    seen = set()
    for (scenario_id, extension), result in zip(found, results, strict=True):
        covered = next(p["valueCode"] for p in extension["extension"] if p["url"] == "covered")
        seen.add(covered)
        failed = {key: value for key, value in result.items() if value != [True]}
        assert failed == {}, (scenario_id, covered)
    # every determination shape was checked, not-covered (crd-ci-q2) included
    assert {"covered", "not-covered", "conditional"} <= seen, seen


def test_the_engine_finds_a_broken_invariant() -> None:
    """The 2.0.1 crd-ci-q2 the issue reported: `not-covered` without pa-needed evaluates to
    empty, and pa-needed on not-covered breaks 2.2's crd-ci-q2 (so a pass above means something)."""
    parts = [
        {"url": "coverage", "valueReference": {"reference": "Coverage/c"}},
        {"url": "covered", "valueCode": "not-covered"},
        {"url": "date", "valueDate": "2026-11-21"},
        {"url": "coverage-assertion-id", "valueString": "a"},
    ]
    extension = {"url": COVERAGE_INFO_URL, "extension": parts}
    assert failures(extension, "2.0.1") == ["crd-ci-q2 = []"]
    assert failures(extension, "2.2") == []
    parts.append({"url": "pa-needed", "valueCode": "auth-needed"})
    assert failures(extension, "2.0.1") == []
    assert failures(extension, "2.2") == ["crd-ci-q2 = [False]"]
    assert evaluate([extension], "2.2")[0].keys() == {
        f"crd-ci-q{n}" for n in (1, 2, 3, 4, 5, 6, 8, 9)
    }


def test_invariants_are_the_igs_own() -> None:
    """Copied, not re-encoded: the file names its source and holds every invariant the
    StructureDefinitions declare (2.0.1: q1..q5; 2.2: q1..q9)."""
    assert "HL7/davinci-crd" in INVARIANTS["source"]
    counts = {v: len(INVARIANTS["versions"][v]["invariants"]) for v in VERSIONS}
    assert counts == {"2.0.1": 5, "2.2": 9}
