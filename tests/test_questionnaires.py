"""Worksheets: generated from every policy, valid FHIR, served, and pre-filled in agreement
with the hook's own criteria statuses (issue 13, acceptance points 1 and 2)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from cds_service.core.facts import CATALOGUE
from cds_service.core.model import Service
from cds_service.core.policy import Node
from cds_service.core.prefill import is_enabled
from cds_service.core.questionnaire import (
    CRITERION_SYSTEM,
    OPEN_MARK,
    QUESTIONNAIRE_BASE,
    Worksheet,
    answer_value,
    fact_value,
    worksheets,
)
from cds_service.policy_store import Knowledge, load
from cds_service.scenarios import load_scenarios, resources
from tests.clients import BASE_URL, EC_KEY, JKU, JwksServer, auth_client, jwk_set, signed
from tests.test_scenarios import all_payer_body, evaluations

SHEETS = worksheets(load().policies)
SCENARIOS = load_scenarios()
# Scenarios whose record carries answered worksheets: the hook reads them as attested evidence,
# the DTR pre-fill reads the record alone, so the two are not expected to agree there.
WITH_WORKSHEETS = {
    s.id
    for s in SCENARIOS
    if any(r["resourceType"] == "QuestionnaireResponse" for r in resources(s.bundle()))
}


def _items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for item in items for i in (item, *_items(item.get("item", [])))]


def _leaves(node: Node) -> list[Node]:
    return [n for n in node.walk() if n.test is not None]


def test_every_policy_and_service_with_criteria_has_a_valid_questionnaire() -> None:
    policies = load().policies
    expected = {(p.id, s) for p in policies for s in Service if p.rule(s) is not None}
    assert {(s.policy.id, s.service) for s in SHEETS} == expected
    assert {s.policy.id for s in SHEETS} == {p.id for p in policies}  # all five
    for sheet in SHEETS:
        Questionnaire.model_validate(sheet.questionnaire)  # raises on invalid FHIR R4
        q = sheet.questionnaire
        assert q["url"] == QUESTIONNAIRE_BASE + sheet.root.id and q["id"] == sheet.root.id
        assert q["version"] == sheet.policy.policy.version


@pytest.mark.parametrize("sheet", SHEETS, ids=lambda s: s.id)
def test_every_leaf_has_a_question_and_every_item_maps_to_a_criterion(sheet: Worksheet) -> None:
    items = _items(sheet.questionnaire["item"])
    nodes = {n.id: n for n in sheet.root.walk()}
    questions = {
        i["linkId"]: i for i in items if i["type"] not in ("group", "display", "attachment")
    }
    # Every fact can be unknown (CATALOGUE: a value of None is "not documented"), so every leaf
    # criterion needs a question; and each question is exactly one leaf.
    assert set(questions) == {n.id for n in _leaves(sheet.root)}
    for item in items:
        if item["type"] == "display":
            assert item["linkId"].removesuffix(".citation") in nodes
            continue
        [code] = item["code"]
        assert code["system"] == CRITERION_SYSTEM and code["code"] in nodes, item["linkId"]
    for link, item in questions.items():
        node, spec = nodes[link], CATALOGUE[nodes[link].test.fact]  # type: ignore[union-attr]
        citation = next(i for i in item["item"] if i["linkId"] == link + ".citation")
        # the question asks for the fact; the criterion's statement stays visible under it
        assert citation["text"].removeprefix(OPEN_MARK + " ") == (
            f"Policy criterion: {node.text.rstrip('. ')}. Policy: {node.citation}"
        )
        expected_type = {"category": "choice", "boolean": "boolean", "codes": "string"}
        assert item["type"] == expected_type.get(spec.kind, item["type"])
        if spec.kind == "number":
            assert item["type"] in ("decimal", "integer")
        if node.applies_if is not None:
            [when] = item["enableWhen"]
            assert when["question"] in questions and when["answerCoding"]["code"] == "allogeneic"


def test_chimerism_questions_are_shown_only_after_an_allogeneic_transplant() -> None:
    sheet = next(s for s in SHEETS if s.id == "wellmark-dli")
    items = {i["linkId"]: i for i in _items(sheet.questionnaire["item"])}
    assert items["wellmark-dli-mixed-chimerism"]["enableWhen"] == [
        {
            "question": "wellmark-dli-allogeneic-hsct",
            "operator": "=",
            "answerCoding": {
                "system": "http://dli-hpc-cds.org/fhir/CodeSystem/hsct-type",
                "code": "allogeneic",
            },
        }
    ]
    assert items["wellmark-dli-mixed-chimerism"]["type"] == "decimal"
    assert items["wellmark-dli-mixed-chimerism.report"]["type"] == "attachment"


def test_answers_and_fact_values_translate_both_ways() -> None:
    sheet = next(s for s in SHEETS if s.id == "centene-dli")
    nonadherence = sheet.leaves["centene-dli-no-nonadherence"]  # a none_of exclusion
    # "No documented non-adherence" answered yes: the fact (nonadherence) is false
    assert fact_value(nonadherence, True) is False and answer_value(nonadherence, False) is True
    grade = sheet.leaves["centene-dli-no-severe-acute-gvhd"]
    assert fact_value(grade, 3) == 3.0 and fact_value(grade, "3") is None
    hsct = sheet.leaves["centene-dli-allogeneic-hsct"]
    assert fact_value(hsct, "allogeneic") == "allogeneic" and fact_value(hsct, "haplo") is None


# --- serving --------------------------------------------------------------------------------
def test_read_and_search_by_canonical_url(client: TestClient) -> None:
    response = client.get("/fhir/Questionnaire/molina-hpc")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json() == next(s for s in SHEETS if s.id == "molina-hpc").questionnaire
    url = QUESTIONNAIRE_BASE + "molina-hpc"
    found = client.get("/fhir/Questionnaire", params={"url": url}).json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == "molina-hpc"
    version = found["entry"][0]["resource"]["version"]
    assert (
        client.get("/fhir/Questionnaire", params={"url": f"{url}|{version}"}).json()["total"] == 1
    )
    stale = client.get("/fhir/Questionnaire", params={"url": f"{url}|1999-01"}).json()
    assert stale == {"resourceType": "Bundle", "type": "searchset", "total": 0}
    assert client.get("/fhir/Questionnaire").json()["total"] == len(SHEETS)
    missing = client.get("/fhir/Questionnaire/nope")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"


def test_the_questionnaire_routes_take_the_same_client_jwt_as_the_hooks(
    knowledge: Knowledge,
) -> None:
    client = auth_client(knowledge, JwksServer({JKU: jwk_set(("ec-1", EC_KEY))}))
    path = "/fhir/Questionnaire/wellmark-dli"
    assert client.get(path).status_code == 401
    wrong = {"Authorization": f"Bearer {signed()}"}  # aud is the hook URL, not this one
    assert client.get(path, headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {signed(aud=BASE_URL + path)}"}
    assert client.get(path, headers=right).status_code == 200
    package = "/fhir/Questionnaire/$questionnaire-package"
    assert client.post(package, json={"resourceType": "Parameters"}).status_code == 401


def package_parameters(scenario_id: str, service: Service) -> dict[str, Any]:
    """DTR input: the Coverage (no payer known here), the order, every policy's worksheet for the
    service by canonical (DTR `questionnaire`: those worksheets, whichever payer's), and the
    record."""
    scenario = next(s for s in SCENARIOS if s.id == scenario_id)
    found = resources(scenario.bundle())
    patient = next(r["id"] for r in found if r["resourceType"] == "Patient")
    coverage = {
        "resourceType": "Coverage",
        "id": f"{patient}-cov",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient}"},
        "payor": [{"display": "A plan with no policy here"}],
    }
    code = "38242" if service is Service.DLI else "38243"
    orders = [
        r
        for r in found
        if r["resourceType"] == "ServiceRequest"
        and any(c.get("code") == code for c in r["code"]["coding"])
    ]
    kinds = (
        "Condition",
        "Procedure",
        "Observation",
        "MedicationAdministration",
        "MedicationRequest",
    )
    record = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in found if r["resourceType"] in kinds],
    }
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "coverage", "resource": coverage},
            *({"name": "order", "resource": o} for o in orders),
            *(
                {"name": "questionnaire", "valueCanonical": sheet.canonical}
                for sheet in SHEETS
                if sheet.service is service
            ),
            {"name": "patientRecord", "resource": record},
        ],
    }


@cache
def package_for(client: TestClient, scenario_id: str, service: Service) -> dict[str, Any]:
    params = package_parameters(scenario_id, service)
    response = client.post("/fhir/Questionnaire/$questionnaire-package", json=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def answered(response: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {i["linkId"]: i["answer"] for i in _items(response.get("item", [])) if "answer" in i}


def disabled_questions(
    items: list[dict[str, Any]], answers: dict[str, list[dict[str, Any]]]
) -> set[str]:
    """The questions enableWhen disables on `answers` (a source answered by code)."""
    codes = {
        link: {a["valueCoding"]["code"] for a in given if "valueCoding" in a}
        for link, given in answers.items()
    }
    return {i["linkId"] for i in _items(items) if not is_enabled(i, codes)}


def _expected_answer(sheet: Worksheet, link: str, status: str) -> bool | None:
    """Whether the criterion's own test holds (met) on its pre-filled value, as the hook saw it;
    None when the hook's status is not the leaf's own test alone (not applicable, reviewer)."""
    node = sheet.leaves[link].node
    if (
        status in ("not-applicable",)
        or node.review_if is not None
        or node.when_unknown != "unknown"
    ):
        return None
    return {"met": True, "not-met": False}.get(status)


@pytest.mark.parametrize("service", list(Service), ids=str)
@pytest.mark.parametrize("scenario_id", [s.id for s in SCENARIOS if s.id not in WITH_WORKSHEETS])
def test_prefilled_answers_agree_with_the_hook_response(
    client: TestClient, scenario_id: str, service: Service
) -> None:
    body = package_for(client, scenario_id, service)
    Parameters.model_validate(body)
    hook = {e["policyId"]: e for e in evaluations(all_payer_body(client, scenario_id, service))}
    packaged = [p["resource"]["entry"] for p in body["parameter"] if p["name"] == "PackageBundle"]
    addressed = {p for p, e in hook.items() if e["determination"] != "not-addressed"}
    by_id = {s.id: s for s in SHEETS}
    assert {by_id[q[0]["resource"]["id"]].policy.id for q in packaged} == addressed
    compared: list[str] = []
    for questionnaire, prefilled in packaged:
        response = prefilled["resource"]
        QuestionnaireResponse.model_validate(response)
        sheet = by_id[questionnaire["resource"]["id"]]
        assert response["questionnaire"] == sheet.canonical
        statuses = {c["id"]: c for c in hook[sheet.policy.id]["criteria"]}
        answers = answered(response)
        disabled = disabled_questions(sheet.questionnaire["item"], answers)
        for link, leaf in sheet.leaves.items():
            criterion = statuses[link]
            if link in disabled:  # enableWhen hides it on these answers: no answer, any status
                assert link not in answers, link
                continue
            if link not in answers:  # open item: the hook could not settle the leaf's own fact
                assert criterion["status"] in ("unknown", "not-applicable"), (link, criterion)
                continue
            [first, *_] = answers[link]
            refs = [x["valueReference"]["reference"] for x in first["extension"][1:]]
            assert refs == criterion.get("evidence", []), link
            value = _prefilled_value(first, answers[link])
            holds = _holds(leaf, value)
            want = _expected_answer(sheet, link, criterion["status"])
            if want is not None:
                assert holds is want, (link, value, criterion["status"])
                compared.append(link)
            elif criterion["status"] == "unknown":  # a settled fact left open by the policy
                assert leaf.node.review_if or leaf.node.applies_if, (link, criterion)
    if any(
        p["resource"].get("item") for _, p in packaged
    ):  # a record that settles anything is compared
        assert compared, scenario_id


def _prefilled_value(first: dict[str, Any], all_answers: list[dict[str, Any]]) -> Any:
    if "valueCoding" in first:
        return first["valueCoding"]["code"]
    if "valueString" in first:
        return tuple(a["valueString"] for a in all_answers)
    return next(v for k, v in first.items() if k.startswith("value"))


def _holds(leaf: Any, answer: Any) -> bool:
    from cds_service.core.evaluate import check
    from cds_service.core.model import Fact, Status

    status = check(leaf.test, Fact(fact_value(leaf, answer)))
    return (status is Status.MET) is not leaf.exclusion
