"""DTR $questionnaire-package as DTR 2.0.1 and DTR 2.2 define it (HL7/davinci-dtr input/fsh at
tags 2.0.1 and 2.2.0: DTRParameters.fsh, DTRQuestionnairePackageBundle.fsh,
DTRQuestionnaireResponse.fsh): inputs coverage, order, questionnaire, context; the output named
per version; the package Bundle and its QuestionnaireResponse as the profiles constrain them; a
4xx + OperationOutcome for a Coverage or order it cannot serve."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse as QR

from cds_service.core.model import Service
from tests.test_questionnaires import package_parameters

PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/"
INPUT_2_2 = DTR + "dtr-qpackage-input-parameters|2.2.0"
NAMES = {"2.0.1": ("PackageBundle", "operationOutcome"), "2.2": ("packagebundle", "outcome")}


def standard(scenario: str = "relapsed-aml-allo-mac", service: Service = Service.DLI,
             version: str = "2.0.1", payer: str = "Molina Healthcare") -> dict[str, Any]:  # fmt: skip
    """What a standard DTR client sends: coverage (the scenario's payer), order, context; no
    questionnaire and no patientRecord."""
    params = package_parameters(scenario, service)
    params["parameter"] = [
        p for p in params["parameter"] if p["name"] not in ("questionnaire", "patientRecord")
    ]
    coverage = params["parameter"][0]["resource"]
    coverage["payor"] = [{"display": payer}]
    params["parameter"].append({"name": "context", "valueString": "assertion-1"})
    if version == "2.2":
        params["meta"] = {"profile": [INPUT_2_2]}
    return params


def post(client: TestClient, params: dict[str, Any]) -> Any:
    return client.post(PACKAGE, json=params)


def _check_qr(response: dict[str, Any], version: str) -> None:
    """DTRQuestionnaireResponse: no basedOn; the Coverage and order linked (2.0.1 qr-context
    2..*; 2.2 qr-coverage 1..* + qr-context); intendedUse 1..*; every answer's origin 1..1."""
    assert "basedOn" not in response
    assert response["meta"]["profile"] == [DTR + "dtr-questionnaireresponse"]
    urls = [x["url"].removeprefix(DTR) for x in response["extension"]]
    if version == "2.0.1":
        assert urls.count("qr-context") == 2 and "qr-coverage" not in urls
    else:
        assert urls.count("qr-coverage") == 1 and urls.count("qr-context") == 1
    assert urls.count("intendedUse") == 1
    references = [
        x["valueReference"]["reference"] for x in response["extension"] if "valueReference" in x
    ]
    assert references[0].startswith("Coverage/") and references[1] == "ServiceRequest/ram-dli"
    stack = list(response.get("item", []))
    while stack:
        item = stack.pop()
        stack += item.get("item", [])
        for answer in item.get("answer", []):
            origins = [x for x in answer["extension"] if x["url"] == DTR + "information-origin"]
            assert len(origins) == 1


@pytest.mark.parametrize("version", ["2.0.1", "2.2"])
def test_a_standard_dtr_client_gets_the_payers_package(client: TestClient, version: str) -> None:
    response = post(client, standard(version=version))
    assert response.status_code == 200, response.text
    body = response.json()
    Parameters.model_validate(body)
    assert body["meta"]["profile"] == [DTR + "dtr-qpackage-output-parameters"]
    name, _ = NAMES[version]
    assert [p["name"] for p in body["parameter"]] == [name]  # Molina's one DLI worksheet
    bundle = body["parameter"][0]["resource"]
    assert bundle["type"] == "collection" and bundle["meta"]["profile"] == [
        DTR + "DTR-QPackageBundle"
    ]
    questionnaire, response_ = (e["resource"] for e in bundle["entry"])
    for model, resource in ((Bundle, bundle), (Questionnaire, questionnaire), (QR, response_)):
        model.model_validate(resource)  # R4 core, by fhir.resources
    assert questionnaire["resourceType"] == "Questionnaire"
    assert response_["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    _check_qr(response_, version)


@pytest.mark.parametrize("version", ["2.0.1", "2.2"])
def test_a_coverage_it_does_not_serve_is_422(client: TestClient, version: str) -> None:
    response = post(client, standard(version=version, payer="A plan with no policy here"))
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "no payer whose policy" in outcome["issue"][0]["diagnostics"]


def test_a_named_worksheet_is_served_whichever_payer_and_an_unknown_one_is_a_warning(
    client: TestClient,
) -> None:
    params = standard(version="2.2", payer="A plan with no policy here")
    canonical = "http://dli-hpc-cds.org/fhir/Questionnaire/"
    known = next(p for p in package_parameters("relapsed-aml-allo-mac", Service.DLI)["parameter"]
                 if p["name"] == "questionnaire")["valueCanonical"]  # fmt: skip
    params["parameter"] += [
        {"name": "questionnaire", "valueCanonical": known},
        {"name": "questionnaire", "valueCanonical": canonical + "no-such-sheet|1"},
    ]
    body = post(client, params).json()
    assert [p["name"] for p in body["parameter"]] == ["packagebundle", "outcome"]
    bundle = body["parameter"][0]["resource"]
    assert bundle["entry"][1]["resource"]["questionnaire"] == known
    issue = body["parameter"][1]["resource"]["issue"][0]
    assert issue["severity"] == "warning" and "no-such-sheet" in issue["diagnostics"]


def test_nothing_to_document_per_version(client: TestClient) -> None:
    """An HPC boost under a DLI-only policy (Anthem): DTR 2.2 allows an outcome alone (oper-8);
    DTR 2.0.1's output needs a PackageBundle (1..*), so it is a 422."""
    for version, status in (("2.2", 200), ("2.0.1", 422)):
        params = standard(service=Service.HPC_BOOST, version=version, payer="Anthem")
        response = post(client, params)
        assert response.status_code == status, (version, response.text)
        if status == 200:
            assert [p["name"] for p in response.json()["parameter"]] == ["outcome"]


def test_the_record_still_prefills_through_patient_record(client: TestClient) -> None:
    """patientRecord stays as the project's optional input: with it, more answers."""
    bare = post(client, standard()).json()
    params = standard()
    record = next(p for p in package_parameters("relapsed-aml-allo-mac", Service.DLI)["parameter"]
                  if p["name"] == "patientRecord")  # fmt: skip
    params["parameter"].append(copy.deepcopy(record))
    full = post(client, params).json()

    def count(body: dict[str, Any]) -> int:
        response = body["parameter"][0]["resource"]["entry"][1]["resource"]
        stack, found = list(response.get("item", [])), 0
        while stack:
            item = stack.pop()
            stack += item.get("item", [])
            found += bool(item.get("answer"))
        return found

    assert count(full) > count(bare)
