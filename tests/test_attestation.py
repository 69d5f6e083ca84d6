"""Worksheet answers read back as attested evidence, through the real HTTP API (issue 13,
acceptance point 3, table-driven over every needs-information fixture and all five policies)."""

from __future__ import annotations

import copy
import logging
from functools import cache
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.task import Task

from cds_service.core.evaluate import check
from cds_service.core.facts import CATALOGUE
from cds_service.core.model import Fact, Service, Status
from cds_service.core.questionnaire import (
    Leaf,
    Worksheet,
    fact_value,
    item_type,
    options,
    value_system,
    worksheets,
)
from cds_service.policy_store import load
from cds_service.scenarios import Scenario, build_request, load_scenarios, service_id, set_payer
from tests.test_questionnaires import answered, package_for

SIGN = f"/cds-services/{service_id('order-sign')}"
SELECT = "/cds-services/dli-hpc-order-select"
SCENARIOS = {s.id: s for s in load_scenarios()}
SHEETS = {(s.policy.id, s.service): s for s in worksheets(load().policies)}
CASES = [
    (scenario.id, service, policy_id)
    for scenario in SCENARIOS.values()
    for service in Service
    for policy_id, expected in scenario.expected[service.value].items()
    if expected == "needs-information"
]
# Needs-information where the worksheet has no open question: every criterion's fact is
# documented, and the policy itself leaves the documented case to medical-director review
# (review_if, cards/README.md). A worksheet answer cannot overrule a documented value (the
# record wins), so these stay needs-information; the test checks that, and the conflict line.
# The one open question's only "no" answer (a malignancy the policy does not list) is itself
# left to medical-director review: no answer refuses the order outright.
NO_REFUSING_ANSWER = {("outside-transplant-no-indication", Service.HPC_BOOST, "molina-mcp-210")}
REVIEWER_CASES = {
    ("breast-cancer-allo-nma", Service.HPC_BOOST, "molina-mcp-210"),
    ("mds-relapse-anthem-unlisted", Service.DLI, "anthem-cg-trans-03"),
    ("persistent-disease-mcode-stable", Service.DLI, "wellmark-07.03.13"),
    ("persistent-disease-mcode-stable", Service.DLI, "bcbsms-l.2.03.402"),
}


def _candidates(leaf: Leaf) -> list[Any]:
    spec = CATALOGUE[leaf.test.fact]
    if spec.kind == "boolean":
        return [True, False]
    if spec.kind == "category":
        return list(options(leaf.test.fact))
    if spec.kind == "number":
        return [0, 3, 50, 100] if item_type(leaf.test) == "integer" else [0.0, 3.0, 50.0, 100.0]
    return [(leaf.test.any_prefix or ["C92"])[0] + ".0", "Z00.00"]


def _satisfies(leaf: Leaf, answer: Any) -> bool:
    status = check(leaf.test, Fact(fact_value(leaf, answer)))
    return (status is Status.MET) is not leaf.exclusion


def _reviewed(leaf: Leaf, answer: Any) -> bool:
    """Whether the policy leaves this answer to the reviewer (review_if on the same fact)."""
    review = leaf.node.review_if
    if review is None or review.fact != leaf.test.fact:
        return False
    return check(review, Fact(fact_value(leaf, answer))) is Status.MET


def _way(leaf: Leaf, satisfying: bool) -> Any | None:
    """An answer that meets the criterion, or one that fails it outright (not one the policy
    leaves to the reviewer)."""
    return next(
        (
            a
            for a in _candidates(leaf)
            if _satisfies(leaf, a) is satisfying and (satisfying or not _reviewed(leaf, a))
        ),
        None,
    )


def _answer(leaf: Leaf, value: Any) -> dict[str, Any]:
    kind = item_type(leaf.test)
    if kind == "choice":
        return {"valueCoding": {"system": value_system(leaf.test.fact), "code": value}}
    key = {"boolean": "valueBoolean", "integer": "valueInteger", "decimal": "valueDecimal"}
    return {key.get(kind, "valueString"): value}


def worksheet_answers(
    sheet: Worksheet, patient: str, answers: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    """A completed QuestionnaireResponse answering `answers` (linkId -> value)."""
    return {
        "resourceType": "QuestionnaireResponse",
        "id": f"{sheet.id}-ws",
        "status": "completed",
        "questionnaire": sheet.canonical,
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2026-11-20T10:00:00Z",
        "author": {"reference": "Practitioner/attester", "display": "Dr. Ada Attester"},
        "item": [
            {"linkId": link, "answer": [_answer(sheet.leaves[link], v)]}
            for link, v in answers.items()
        ],
    } | fields


def fire(
    client: TestClient, scenario: Scenario, service: Service, responses: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The all-policy order-select answer (no Coverage), with `responses` in the optional key."""
    request = build_request(scenario.bundle(), "order-select", (service,))
    request["prefetch"]["coverage"] = None
    entries = [{"resource": r} for r in responses]
    request["prefetch"]["questionnaireResponses"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        **({"entry": entries} if entries else {}),
    }
    response = client.post(SELECT, json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    found = {
        e["policyId"]: e
        for card in body["cards"]
        for e in card["extension"]["dli-hpc-cds.evaluations"]
    }
    return found, body


@cache
def open_items(
    client: TestClient, scenario_id: str, service: Service, policy_id: str
) -> tuple[str, ...]:
    """The questions the pre-filled worksheet leaves open, and the hook leaves unknown."""
    sheet = SHEETS[(policy_id, service)]
    package = package_for(client, scenario_id, service)
    response = next(
        p["resource"]["entry"][1]["resource"]
        for p in package["parameter"]
        if p["resource"]["entry"][0]["resource"]["id"] == sheet.id
    )
    prefilled = answered(response)
    hook, _ = fire(client, SCENARIOS[scenario_id], service, [])
    unknown = {c["id"] for c in hook[policy_id]["criteria"] if c["status"] == "unknown"}
    return tuple(link for link in sheet.leaves if link in unknown and link not in prefilled)


@pytest.mark.parametrize(("scenario_id", "service", "policy_id"), CASES, ids=str)
def test_answering_the_open_items_decides_the_order(
    client: TestClient, scenario_id: str, service: Service, policy_id: str
) -> None:
    scenario, sheet = SCENARIOS[scenario_id], SHEETS[(policy_id, service)]
    items = open_items(client, scenario_id, service, policy_id)
    good = {link: _way(sheet.leaves[link], True) for link in items}
    if (scenario_id, service, policy_id) in REVIEWER_CASES:
        assert not items  # nothing for the clinician to answer: it is the reviewer's call
        return
    assert items, "a needs-information answer with no open question"
    answers = worksheet_answers(sheet, scenario.id, good)
    result, _ = fire(client, scenario, service, [answers])
    assert result[policy_id]["determination"] == "meets-criteria", result[policy_id]["criteria"]
    for c in result[policy_id]["criteria"]:
        if c["id"] in items:  # each answered criterion rests on the worksheet
            assert f"QuestionnaireResponse/{sheet.id}-ws" in c.get("evidence", []), c
    # One required item the other way; when every open item is an alternative of one any_of
    # (no single one is required), all of them the other way.
    failing = [link for link in items if _way(sheet.leaves[link], False) is not None]
    assert bool(failing) is ((scenario_id, service, policy_id) not in NO_REFUSING_ANSWER)
    outcomes = {}
    for link in failing:
        answers = worksheet_answers(
            sheet, scenario.id, good | {link: _way(sheet.leaves[link], False)}
        )
        outcomes[link] = fire(client, scenario, service, [answers])[0][policy_id]["determination"]
    if not failing:  # the "no" answer goes to the reviewer: needs-information, never refused
        [link] = items
        reviewed = next(
            a for a in _candidates(sheet.leaves[link]) if _reviewed(sheet.leaves[link], a)
        )
        answers = worksheet_answers(sheet, scenario.id, {link: reviewed})
        result, _ = fire(client, scenario, service, [answers])
        assert result[policy_id]["determination"] == "needs-information"
    elif "does-not-meet-criteria" not in outcomes.values():
        every = good | {link: _way(sheet.leaves[link], False) for link in failing}
        result, _ = fire(client, scenario, service, [worksheet_answers(sheet, scenario.id, every)])
        assert result[policy_id]["determination"] == "does-not-meet-criteria", outcomes


@pytest.mark.parametrize("case", sorted(REVIEWER_CASES, key=str), ids=str)
def test_a_documented_value_wins_over_a_worksheet_answer_and_the_card_says_so(
    client: TestClient, case: tuple[str, Service, str]
) -> None:
    scenario_id, service, policy_id = case
    scenario, sheet = SCENARIOS[scenario_id], SHEETS[case[2], case[1]]
    hook, _ = fire(client, scenario, service, [])
    unknown = [c["id"] for c in hook[policy_id]["criteria"] if c["status"] == "unknown"]
    leaf = next(link for link in unknown if link in sheet.leaves)
    answers = worksheet_answers(sheet, scenario.id, {leaf: _way(sheet.leaves[leaf], True)})
    result, body = fire(client, scenario, service, [answers])
    assert result[policy_id]["determination"] == "needs-information"
    [card] = [
        c
        for c in body["cards"]
        if c["extension"]["dli-hpc-cds.evaluations"][0]["policyId"] == policy_id
    ]
    assert "Conflict: the worksheet (2026-11-20)" in card["detail"]  # words, not the id
    assert "the record is used" in card["detail"]
    criterion = next(c for c in result[policy_id]["criteria"] if c["id"] == leaf)
    assert f"QuestionnaireResponse/{sheet.id}-ws" not in criterion.get("evidence", [])


def test_the_evidence_line_says_who_attested_and_when(client: TestClient) -> None:
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True})
    result, body = fire(client, scenario, Service.DLI, [answers])
    assert result["molina-mcp-210"]["determination"] == "meets-criteria"
    [card] = [c for c in body["cards"] if "Molina" in c["source"]["label"]]
    assert "Attested by Dr. Ada Attester (a clinician): yes on 2026-11-20" in card["detail"]
    assert "suggestions" not in card  # met: nothing left to complete


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"subject": {"reference": "Patient/someone-else"}}, "another patient"),
        (
            {"questionnaire": "http://dli-hpc-cds.org/fhir/Questionnaire/molina-dli|2019-01"},
            "stale policy version",
        ),
        (
            {"questionnaire": "http://dli-hpc-cds.org/fhir/Questionnaire/molina-dli"},
            "no questionnaire version",
        ),
        ({"status": "in-progress"}, "status in-progress"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_answers_for_another_patient_or_version_are_ignored_and_logged_by_id(
    client: TestClient, caplog: pytest.LogCaptureFixture, change: dict[str, Any], reason: str
) -> None:
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    answers = (
        worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True}) | change
    )
    with caplog.at_level(logging.INFO, logger="cds_service"):
        result, _ = fire(client, scenario, Service.DLI, [answers])
    assert result["molina-mcp-210"]["determination"] == "needs-information"
    fields = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "hook evaluated"]
    if reason == "another patient":  # not this patient's record at all (issue 24): named by id
        assert fields[-1]["other_patient_ids"] == ["QuestionnaireResponse/molina-dli-ws"]
    else:  # counts per reason only: no linkIds or other client text in the log
        assert fields[-1]["ignored_answers"] == {reason: 1}
    assert fields[-1]["attested"] == []


def test_an_unknown_item_is_ignored_the_rest_is_read(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True})
    answers["item"].append(
        {"linkId": "made-up-question", "answer": [{"valueString": "Secret note"}]}
    )
    with caplog.at_level(logging.INFO, logger="cds_service"):
        result, _ = fire(client, scenario, Service.DLI, [answers])
    assert result["molina-mcp-210"]["determination"] == "meets-criteria"
    fields = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "hook evaluated"]
    assert fields[-1]["ignored_answers"] == {"unknown item": 1}
    assert "made-up-question" not in caplog.text  # a linkId is client text
    assert fields[-1]["attested"] == ["molina-dli-planned-prevention"]  # criterion ids only
    assert "Secret note" not in caplog.text and "Attester" not in caplog.text


def test_a_worksheet_in_the_orders_supporting_info_is_read(client: TestClient) -> None:
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True})
    request = build_request(scenario.bundle(), "order-select", (Service.DLI,))
    request["prefetch"]["coverage"] = None
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["contained"] = [copy.deepcopy(answers) | {"id": "ws"}]
    order["supportingInfo"] = [{"reference": "#ws"}]
    body = client.post(SELECT, json=request).json()
    found = {
        e["policyId"]: e for c in body["cards"] for e in c["extension"]["dli-hpc-cds.evaluations"]
    }
    assert found["molina-mcp-210"]["determination"] == "meets-criteria"


def test_needs_information_points_to_the_worksheet(client: TestClient) -> None:
    """CRD resp-38 doc-needed + questionnaire; the Request form completion Task suggestion."""
    scenario = SCENARIOS["prophylactic-dli-ric"]
    request = build_request(scenario.bundle(), "order-sign", (Service.DLI,))
    set_payer(request["prefetch"], next(p for p in load().policies if p.id == "molina-mcp-210"))
    body = client.post(SIGN, json=request).json()
    sheet = SHEETS["molina-mcp-210", Service.DLI]
    parts = body["systemActions"][0]["resource"]["extension"][-1]["extension"]
    urls = [p["url"] for p in parts]
    assert urls.index("questionnaire") == urls.index("doc-needed") + 1
    assert (
        next(p for p in parts if p["url"] == "questionnaire")["valueCanonical"] == sheet.canonical
    )
    [card] = body["cards"]
    [suggestion] = card["suggestions"]
    assert card["selectionBehavior"] == "any" and suggestion["uuid"]
    [action] = suggestion["actions"]
    task = action["resource"]
    Task.model_validate(task)
    assert action["type"] == "create" and action["description"]
    assert task["code"]["coding"][0]["code"] == "complete-questionnaire"
    assert task["input"] == [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/uv/sdc/CodeSystem/temp",
                        "code": "questionnaire",
                    }
                ],
                "text": "questionnaire",
            },
            "valueCanonical": sheet.canonical,
        },
        {  # CRD 2.0.1 afterCompletion 1..*: Molina MCP-210 sets no prior-auth rule
            "type": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp",
                        "code": "after-completion-action",
                    }
                ],
                "text": "afterCompletion",
            },
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp",
                        "code": "initial-claim-include",
                        "display": "Include in initial claim",
                    }
                ]
            },
        },
    ]
    assert task["for"] == {"reference": f"Patient/{scenario.id}"}
    assert task["basedOn"] == [{"reference": "ServiceRequest/pric-dli"}]
    assert task["authoredOn"] == "2026-11-21"  # made today (the request date)


def test_a_documented_transplant_wins_over_a_contradicting_answer(client: TestClient) -> None:
    scenario, sheet = SCENARIOS["relapsed-aml-allo-mac"], SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-allogeneic-hsct": "autologous"})
    result, body = fire(client, scenario, Service.DLI, [answers])
    assert result["molina-mcp-210"]["determination"] == "meets-criteria"  # the record decides
    hsct = next(
        c for c in result["molina-mcp-210"]["criteria"] if c["id"] == "molina-dli-allogeneic-hsct"
    )
    assert hsct["status"] == "met" and "QuestionnaireResponse/molina-dli-ws" not in hsct["evidence"]
    [card] = [c for c in body["cards"] if "Molina" in c["source"]["label"]]
    line = next(x for x in card["detail"].splitlines() if "Conflict" in x)
    assert "the worksheet (2026-11-20)" in line and "Autologous" in line


def test_of_two_worksheets_the_latest_answer_counts(client: TestClient) -> None:
    scenario, sheet = SCENARIOS["prophylactic-dli-ric"], SHEETS["molina-mcp-210", Service.DLI]
    older = worksheet_answers(
        sheet, scenario.id, {"molina-dli-planned-prevention": True}, id="old", authored="2026-11-01"
    )
    newer = worksheet_answers(
        sheet,
        scenario.id,
        {"molina-dli-planned-prevention": False},
        id="new",
        authored="2026-11-19",
    )
    for order in ([older, newer], [newer, older]):  # whatever order the EHR sends them in
        result, _ = fire(client, scenario, Service.DLI, order)
        assert result["molina-mcp-210"]["determination"] == "does-not-meet-criteria"
