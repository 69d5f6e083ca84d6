"""Every FHIR resource the service emits, collected through its API for validation.

What a client receives, per scenario (fhir_fixtures), for each hook the discovery document
advertises, with the scenario's own Coverage and with none (the all-payers 400), as a CRD 2.0.1
client (no requestedVersion) and a CRD 2.2 client: the resources in card suggestions and
systemActions (ServiceRequest updates carrying coverage-information, Tasks), and the
OperationOutcome of a 4xx. For DTR: $questionnaire-package answers (Parameters with every
PackageBundle, Questionnaire and pre-filled QuestionnaireResponse) as a DTR 2.0.1 and a DTR 2.2
client, with the record (the sandbox's input) and without (the standard DTR inputs); the
Questionnaire search Bundle and reads; and the OperationOutcomes of rejected requests.

`python -m tests.emitted [folder]` prints the counts per resource type (and writes the
resources as JSON files into `folder`, for a validator run by hand).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cds_service.api.discovery import SERVICES
from cds_service.core.model import Service
from cds_service.sandbox.router import package_parameters
from cds_service.scenarios import Scenario, build_request, load_scenarios, service_id

PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
DTR_INPUT = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters"
CRD_VERSIONS = {"2.0.1": None, "2.2": "2.2"}  # CRD version -> davinci-crd.requestedVersion
DTR_VERSIONS = {"2.0.1": None, "2.2": "2.2.0"}  # DTR version -> input profile version claimed
SERVICE_SETS = {"dli": (Service.DLI,), "hpc-boost": (Service.HPC_BOOST,), "both": tuple(Service)}

Emitted = tuple[str, dict[str, Any]]  # (where it came from, the resource)


def resources_in(body: Any) -> Iterator[dict[str, Any]]:
    """The outermost FHIR resources in a JSON answer (a CDS Hooks response holds several;
    a FHIR answer is one). Resources nested in them are validated as part of them."""
    if isinstance(body, dict):
        if isinstance(body.get("resourceType"), str):
            yield body
            return
        for value in body.values():
            yield from resources_in(value)
    elif isinstance(body, list):
        for value in body:
            yield from resources_in(value)


def _answer(label: str, response: Any) -> Iterator[Emitted]:
    for resource in resources_in(response.json()):
        yield f"{label} -> {response.status_code}", resource


def hook_answers(client: TestClient, scenario: Scenario) -> Iterator[Emitted]:
    """Every hook's answer for the scenario: own Coverage / none, CRD 2.0.1 / 2.2."""
    for hook in sorted({s.hook for s in SERVICES.values()}):
        for payer in ("own-coverage", "all-payers"):
            for version, requested in CRD_VERSIONS.items():
                request = build_request(scenario.bundle(), hook, tuple(Service))
                if payer == "all-payers":
                    request["prefetch"]["coverage"] = None
                if requested is not None:
                    request["extension"] = {"davinci-crd.requestedVersion": requested}
                response = client.post(f"/cds-services/{service_id(hook)}", json=request)
                yield from _answer(f"{scenario.id} {hook} {payer} CRD {version}", response)


def _dtr_input(parameters: dict[str, Any], version: str, with_record: bool) -> dict[str, Any]:
    given = dict(parameters)
    if not with_record:
        given["parameter"] = [p for p in given["parameter"] if p["name"] != "patientRecord"]
    claimed = DTR_VERSIONS[version]
    if claimed is not None:
        given["meta"] = {"profile": [f"{DTR_INPUT}|{claimed}"]}
    return given


def packages(client: TestClient, scenario: Scenario) -> Iterator[Emitted]:
    """$questionnaire-package for each set of the scenario's orders, DTR 2.0.1 / 2.2, with the
    record (the sandbox's input) and without it (a standard DTR app's)."""
    prefetch = build_request(scenario.bundle(), "order-sign", tuple(Service))["prefetch"]
    for name, services in SERVICE_SETS.items():
        try:
            base = package_parameters(scenario, services, prefetch)
        except StopIteration:  # no Patient: not a case the package serves
            continue
        if not any(p["name"] == "order" for p in base["parameter"]):
            continue
        for version in DTR_VERSIONS:
            for with_record in (True, False):
                given = _dtr_input(base, version, with_record)
                response = client.post(PACKAGE, json=given)
                record = "record" if with_record else "no record"
                label = f"{scenario.id} package {name} DTR {version} {record}"
                yield from _answer(label, response)


def reads_and_rejections(client: TestClient) -> Iterator[Emitted]:
    """The Questionnaire search and reads, and the OperationOutcomes of rejected requests."""
    search = client.get("/fhir/Questionnaire")
    yield from _answer("GET /fhir/Questionnaire", search)
    for entry in search.json().get("entry", []):
        questionnaire_id = entry["resource"]["id"]
        yield from _answer(
            f"GET {questionnaire_id}", client.get(f"/fhir/Questionnaire/{questionnaire_id}")
        )
    yield from _answer("GET unknown Questionnaire", client.get("/fhir/Questionnaire/none"))
    sign = f"/cds-services/{service_id('order-sign')}"
    yield from _answer("order-sign not JSON", client.post(sign, content=b"{"))
    yield from _answer("order-sign no context", client.post(sign, json={"hook": "order-sign"}))
    yield from _answer("unknown service", client.post("/cds-services/none", json={}))
    yield from _answer(
        "package not Parameters", client.post(PACKAGE, json={"resourceType": "Bundle"})
    )
    unknown_payer = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "coverage",
                "resource": {
                    "resourceType": "Coverage",
                    "status": "active",
                    "beneficiary": {"reference": "Patient/p"},
                    "payor": [{"display": "x"}],
                },
            }
        ],
    }
    yield from _answer("package no order", client.post(PACKAGE, json=unknown_payer))
    yield from _answer("unknown assertion", client.get("/audit/assertions/none"))


def emitted(client: TestClient) -> list[Emitted]:
    """Everything above, for every scenario."""
    found = list(reads_and_rejections(client))
    for scenario in load_scenarios():
        found += hook_answers(client, scenario)
        found += packages(client, scenario)
    return found


def count_types(found: list[Emitted]) -> Counter[str]:
    """Resources per type, nested ones (Bundle entries, Parameters resources) included."""
    counts: Counter[str] = Counter()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("resourceType"), str):
                counts[value["resourceType"]] += 1
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    for _, resource in found:
        walk(resource)
    return counts


def main() -> None:
    from tests.conftest import make_client

    with make_client() as client:
        found = emitted(client)
    for name, count in sorted(count_types(found).items()):
        print(f"{name:28} {count:6}")  # noqa: T201
    if len(sys.argv) > 1:
        folder = Path(sys.argv[1])
        folder.mkdir(parents=True, exist_ok=True)
        for number, (label, resource) in enumerate(found):
            text = json.dumps({"label": label, "resource": resource}, indent=1)
            (folder / f"{number:05}.json").write_text(text, "utf-8")


if __name__ == "__main__":
    main()
