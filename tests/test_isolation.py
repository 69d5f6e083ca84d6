"""Issue 24 through the real HTTP API: one patient per call (records of another patient are not
evidence: left out, named by id in the log, stated on the card; $questionnaire-package refuses
inputs for different patients), only valid FHIR decides (a worksheet answer of the wrong JSON
type is ignored and counted, never read), no 500 from input (an unknown resource type, a
structure over a limit on $questionnaire-package), and a bounded log line with no linkIds."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.core.model import Service
from cds_service.logs import MAX_LINE_CHARS, JsonFormatter
from cds_service.scenarios import build_request
from tests.test_attestation import SCENARIOS, SELECT, SHEETS, SIGN, fire, worksheet_answers
from tests.test_questionnaires import package_parameters

PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
OTHER = "Patient/someone-else"


def _determinations(body: dict[str, Any]) -> dict[str, str]:
    return {
        e["policyId"]: e["determination"]
        for card in body["cards"]
        for e in card["extension"]["dli-hpc-cds.evaluations"]
    }


def _hook_fields(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    found = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "hook evaluated"]
    fields: dict[str, Any] = found[-1]
    return fields


# --- 3. only valid FHIR decides -------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", 1, "yes", "on"])
def test_a_boolean_answer_of_another_json_type_is_ignored_and_counted(
    client: TestClient, caplog: pytest.LogCaptureFixture, value: Any
) -> None:
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True})
    answers["item"][0]["answer"] = [{"valueBoolean": value}]
    with caplog.at_level(logging.INFO, logger="cds_service"):
        result, _ = fire(client, scenario, Service.DLI, [answers])
    assert result["molina-mcp-210"]["determination"] == "needs-information"
    fields = _hook_fields(caplog)
    assert fields["ignored_answers"] == {"invalid answer": 1}
    assert fields["attested"] == []


def test_the_same_answer_as_a_json_boolean_is_read(client: TestClient) -> None:
    """The control: the only difference from the test above is the JSON type."""
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True})
    answers["item"][0]["answer"] = [{"valueBoolean": True}]
    result, _ = fire(client, scenario, Service.DLI, [answers])
    assert result["molina-mcp-210"]["determination"] == "meets-criteria"


def test_a_mistyped_answer_in_the_orders_supporting_info_is_not_read(client: TestClient) -> None:
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True})
    answers["item"][0]["answer"] = [{"valueBoolean": "true"}]
    request = build_request(scenario.bundle(), "order-select", (Service.DLI,))
    request["prefetch"]["coverage"] = None
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["contained"] = [answers | {"id": "ws"}]
    order["supportingInfo"] = [{"reference": "#ws"}]
    body = client.post(SELECT, json=request).json()
    assert _determinations(body)["molina-mcp-210"] == "needs-information"


# --- 2. one patient per call ----------------------------------------------------------------


def _for_another_patient(request: dict[str, Any], key: str) -> list[str]:
    """Every resource under prefetch `key` re-labelled as another patient's; their references."""
    moved = []
    for entry in request["prefetch"][key]["entry"]:
        resource = entry["resource"]
        resource["subject"] = {"reference": OTHER}
        moved.append(f"{resource['resourceType']}/{resource['id']}")
    return moved


def test_records_of_another_patient_are_not_evidence(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The relapsed-AML patient meets every policy; the same Conditions and Procedures labelled
    as someone else's leave no diagnosis or transplant to decide on."""
    scenario = SCENARIOS["relapsed-aml-allo-mac"]
    request = build_request(scenario.bundle(), "order-select", (Service.DLI,))
    request["prefetch"]["coverage"] = None
    before = _determinations(client.post(SELECT, json=request).json())
    assert set(before.values()) == {"meets-criteria"}
    moved = _for_another_patient(request, "conditions") + _for_another_patient(
        request, "procedures"
    )
    with caplog.at_level(logging.INFO, logger="cds_service"):
        body = client.post(SELECT, json=request).json()
    assert "meets-criteria" not in _determinations(body).values()
    for card in body["cards"]:
        assert "records for another patient were ignored" in card["detail"]
    fields = _hook_fields(caplog)
    assert fields["other_patient"] == len(moved)
    assert fields["other_patient_ids"] == moved[:20]


def test_a_coverage_of_another_patient_does_not_route(client: TestClient) -> None:
    scenario = SCENARIOS["relapsed-aml-allo-mac"]
    request = build_request(scenario.bundle(), "order-sign", (Service.DLI,))
    assert len(_determinations(client.post(SIGN, json=request).json())) == 1  # the payer's
    for entry in request["prefetch"]["coverage"]["entry"]:
        if entry["resource"]["resourceType"] == "Coverage":
            entry["resource"]["beneficiary"] = {"reference": OTHER}
    refused = client.post(SIGN, json=request)  # no Coverage of this patient: no payer (hook-13)
    assert refused.status_code == 400 and "no Coverage" in refused.text
    request["hook"] = "order-select"
    request["context"]["selections"] = ["ServiceRequest/ram-dli"]
    body = client.post(SELECT, json=request).json()
    assert len(_determinations(body)) == 5  # no Coverage of this patient: every policy


@pytest.mark.parametrize("what", ["coverage", "order", "patientRecord"])
def test_the_package_refuses_inputs_for_different_patients(client: TestClient, what: str) -> None:
    params = package_parameters("relapsed-aml-allo-mac", Service.DLI)
    part = next(p for p in params["parameter"] if p["name"] == what)
    resource = part["resource"]
    if what == "coverage":
        resource["beneficiary"] = {"reference": OTHER}
    elif what == "order":
        resource["subject"] = {"reference": OTHER}
    else:
        resource["entry"][0]["resource"]["subject"] = {"reference": OTHER}
    response = client.post(PACKAGE, json=params)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "different patients" in outcome["issue"][0]["diagnostics"]


# --- 4. no 500 from input -------------------------------------------------------------------


def _with_transport(resource: dict[str, Any]) -> dict[str, Any]:
    """An R5 resource type (Transport) in `contained`: R4B does not know it."""
    return resource | {"contained": [{"resourceType": "Transport", "id": "t1"}]}


def test_an_unknown_contained_type_makes_the_resource_unreadable_not_a_500(
    client: TestClient,
) -> None:
    scenario = SCENARIOS["relapsed-aml-allo-mac"]
    request = build_request(scenario.bundle(), "order-sign", (Service.DLI,))
    for key in ("conditions", "procedures", "observations"):
        for entry in request["prefetch"][key]["entry"]:
            entry["resource"] = _with_transport(entry["resource"])
    response = client.post(SIGN, json=request)
    assert response.status_code == 200, response.text
    assert "meets-criteria" not in _determinations(response.json()).values()


def test_an_unknown_type_in_the_package_is_a_400(client: TestClient) -> None:
    params = package_parameters("relapsed-aml-allo-mac", Service.DLI)
    params["parameter"][0]["resource"] = _with_transport(params["parameter"][0]["resource"])
    response = client.post(PACKAGE, json=params)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_structure_over_a_limit_in_the_package_is_a_413(client: TestClient) -> None:
    params = package_parameters("relapsed-aml-allo-mac", Service.DLI)
    record = next(p for p in params["parameter"] if p["name"] == "patientRecord")["resource"]
    condition = copy.deepcopy(record["entry"][0]["resource"])
    condition["id"] = "many-codings"
    condition["code"]["coding"] += [{"system": "urn:x", "code": str(i)} for i in range(101)]
    record["entry"].append({"resource": condition})
    response = client.post(PACKAGE, json=params)
    assert response.status_code == 413, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "CDS_MAX_CODINGS" in outcome["issue"][0]["diagnostics"]


# --- 6. logs --------------------------------------------------------------------------------


def test_ignored_answers_are_one_summary_without_link_ids(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True})
    answers["item"] += [
        {"linkId": f"Patient name Jane Doe {i}", "answer": [{"valueString": "x"}]}
        for i in range(2000)
    ]
    with caplog.at_level(logging.INFO, logger="cds_service"):
        fire(client, scenario, Service.DLI, [answers])
    record = next(r for r in caplog.records if r.getMessage() == "hook evaluated")
    assert record.__dict__["fields"]["ignored_answers"] == {"unknown item": 2000}
    line = JsonFormatter().format(record)
    assert "Jane Doe" not in line
    assert len(line) <= MAX_LINE_CHARS


def test_a_log_line_is_bounded_whatever_its_fields() -> None:
    record = logging.LogRecord("cds_service", logging.INFO, __file__, 1, "hook evaluated", (), None)
    record.fields = {"orders": ["ServiceRequest/x" * 10] * 10_000}
    line = JsonFormatter().format(record)
    assert len(line) <= MAX_LINE_CHARS
    assert '"truncated": true' in line


def test_a_number_sent_as_a_string_is_not_read(client: TestClient) -> None:
    """`valueQuantity.value: "71"` is not valid FHIR JSON (fhir.resources would coerce it): the
    chimerism result that makes the HPC boost meet the policies is then unreadable."""
    scenario = SCENARIOS["relapsed-aml-allo-mac"]
    request = build_request(scenario.bundle(), "order-select", (Service.HPC_BOOST,))
    request["prefetch"]["coverage"] = None
    before = _determinations(client.post(SELECT, json=request).json())
    assert "meets-criteria" in before.values()
    for entry in request["prefetch"]["observations"]["entry"]:
        quantity = entry["resource"].get("valueQuantity")
        if quantity is not None:
            quantity["value"] = str(quantity["value"])
    after = _determinations(client.post(SELECT, json=request).json())
    assert after != before and "meets-criteria" not in after.values()
