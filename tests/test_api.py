"""The HTTP API: discovery, request validation, error bodies, prefetch handling, options."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.core.model import Service
from cds_service.scenarios import build_request, find_scenario
from tests.conformance import problems

SIGN = "/cds-services/dli-hpc-order-sign"
SELECT = "/cds-services/dli-hpc-order-select"
BUNDLE = find_scenario("relapsed-aml-allo-mac").bundle()
TOKEN = re.compile(r"\{\{([^}]*)\}\}")


def request(
    hook: str = "order-sign", services: tuple[Service, ...] = (Service.DLI,)
) -> dict[str, Any]:
    return build_request(BUNDLE, hook, services)


def assert_outcome(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert fragment in body["issue"][0]["diagnostics"]


def test_discovery(client: TestClient) -> None:
    body = client.get("/cds-services").json()
    services = {s["id"]: s for s in body["services"]}
    assert {i: s["hook"] for i, s in services.items()} == {
        "dli-hpc-order-sign": "order-sign",
        "dli-hpc-order-select": "order-select",
        "dli-hpc-appointment-book": "appointment-book",
        "dli-hpc-order-dispatch": "order-dispatch",
    }
    record_keys = {
        "patient",
        "coverage",
        "conditions",
        "procedures",
        "observations",
        "medication-administrations",
        "medication-requests",
        "questionnaireResponses",
    }
    for service in services.values():
        assert service["title"] and service["description"]
        by_reference = service["hook"] in ("appointment-book", "order-dispatch")
        assert set(service["prefetch"]) == record_keys | ({"serviceRequests"} if by_reference else set())
        for key, template in service["prefetch"].items():
            if key == "serviceRequests":
                # CRD 2.2.1's standard template (CDS Hooks 3.0 FHIRPath token): no CDS Hooks 2.0
                # token can name the orders of a Bundle or an array (api/discovery.py)
                context = "appointments" if service["hook"] == "appointment-book" else "dispatchedOrders"
                assert template.startswith("ServiceRequest?_id={{context." + context)
                continue
            # CDS Hooks 2.0 prefetch tokens: only first-level context fields
            assert all(
                t.startswith("context.") and "." not in t[8:] for t in TOKEN.findall(template)
            )
        ext = service["extension"]
        assert ext["davinci-crd.version"] == ["2.0", "2.2"]
        options = {o["code"]: o for o in ext["davinci-crd.configuration-options"]}
        assert {c: o["type"] for c, o in options.items()} == {
            "guideline": "boolean",
            "coverage-info": "boolean",
            "max-cards": "integer",
        }
        assert all(
            {"code", "type", "name", "description", "default"} <= set(o) for o in options.values()
        )


BAD_REQUESTS = [
    ("bad JSON", b'{"hook": "order-sign",', 400, "not valid JSON"),
    ("not an object", b"[1, 2]", 400, "JSON object"),
    ("wrong hook", lambda r: r.update(hook="order-select"), 400, "answers hook 'order-sign'"),
    ("missing hookInstance", lambda r: r.pop("hookInstance"), 400, "hookInstance"),
    ("hookInstance not a UUID", lambda r: r.update(hookInstance="abc"), 400, "hookInstance"),
    ("missing context", lambda r: r.pop("context"), 400, "context"),
    ("missing patientId", lambda r: r["context"].pop("patientId"), 400, "context.patientId"),
    ("bad userId", lambda r: r["context"].update(userId="nurse-7"), 400, "context.userId"),
    ("draftOrders not a Bundle", lambda r: r["context"].update(draftOrders={"resourceType": "List"}), 400, "draftOrders must be a FHIR Bundle"),
    ("empty draftOrders", lambda r: r["context"]["draftOrders"].update(entry=[]), 400, "draftOrders.entry"),
    ("order without id", lambda r: r["context"]["draftOrders"]["entry"][0]["resource"].pop("id"), 400, "needs an id"),
    ("order for another patient", lambda r: r["context"]["draftOrders"]["entry"][0]["resource"].update(subject={"reference": "Patient/other"}), 400, "not Patient/"),
    ("token without fhirServer", lambda r: r.update(fhirAuthorization={"access_token": "t", "token_type": "Bearer", "expires_in": 30, "scope": "s", "subject": "c"}), 400, "fhirServer is required"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "change", "status", "message"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_requests_get_an_operation_outcome(
    client: TestClient, why: str, change: Any, status: int, message: str
) -> None:
    if isinstance(change, bytes):
        response = client.post(SIGN, content=change, headers={"content-type": "application/json"})
    else:
        body = request()
        change(body)
        response = client.post(SIGN, json=body)
    assert_outcome(response, status, message)


def test_order_select_validates_selections(client: TestClient) -> None:
    body = request("order-select")
    body["context"].pop("selections")
    assert_outcome(client.post(SELECT, json=body), 400, "selections is required")
    body["context"]["selections"] = ["ServiceRequest/not-there"]
    assert_outcome(client.post(SELECT, json=body), 400, "not found in draftOrders")


def test_unknown_service_is_404(client: TestClient) -> None:
    assert_outcome(client.post("/cds-services/nope", json=request()), 404, "no CDS service")


def test_orders_that_are_not_dli_or_hpc_get_no_cards(client: TestClient) -> None:
    body = request()
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["code"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "85025"}]}
    body["prefetch"] = {}  # nothing is needed for an out-of-scope order
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


@pytest.mark.parametrize("key", ["coverage", "conditions", "procedures", "observations"])
def test_missing_required_prefetch_is_412(client: TestClient, key: str) -> None:
    body = request()
    body["prefetch"].pop(key)
    assert_outcome(client.post(SIGN, json=body), 412, key)


def test_operation_outcome_prefetch_counts_as_missing(client: TestClient) -> None:
    body = request()
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    body["prefetch"]["observations"] = outcome
    assert_outcome(client.post(SIGN, json=body), 412, "observations")
    body = request()
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset",
                                      "entry": [{"resource": outcome}]}  # fmt: skip
    assert_outcome(client.post(SIGN, json=body), 412, "conditions")


def test_null_prefetch_means_no_data(client: TestClient) -> None:
    body = request()
    body["prefetch"]["observations"] = None
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    criteria = {c["id"]: c["status"] for card in response.json()["cards"]
                for e in card["extension"]["dli-hpc-cds.evaluations"] for c in e["criteria"]}  # fmt: skip
    assert criteria["molina-dli-mixed-chimerism"] == "unknown"


def evaluation(body: dict[str, Any], policy_id: str) -> dict[str, Any]:
    return next(
        e for card in body["cards"] for e in card["extension"]["dli-hpc-cds.evaluations"]
        if e["policyId"] == policy_id
    )  # fmt: skip


def test_a_broken_resource_makes_its_criteria_unknown_not_a_500(client: TestClient) -> None:
    body = request()
    entries = body["prefetch"]["observations"]["entry"]
    chimerism = [e for e in entries if e["resource"]["code"]["coding"][0]["code"] == "102113-8"]
    for entry in chimerism:
        entry["resource"].pop("status")  # required in FHIR R4
        entry["resource"]["valueQuantity"] = "seventy-one"
    body["prefetch"]["procedures"]["entry"].append({"resource": "not even an object"})
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    result = evaluation(response.json(), "molina-mcp-210")
    statuses = {c["id"]: c["status"] for c in result["criteria"]}
    assert statuses["molina-dli-mixed-chimerism"] == "unknown"
    assert statuses["molina-dli-relapsed-refractory-persistent"] == "met"  # unaffected
    assert result["determination"] == "meets-criteria"


def test_broken_draft_order_is_400(client: TestClient) -> None:
    body = request()
    body["context"]["draftOrders"]["entry"][0] = {"resource": ["nope"]}
    assert_outcome(client.post(SIGN, json=body), 400, "entry[0].resource")


def test_routing_and_coverage_information(client: TestClient) -> None:
    body = client.post(SIGN, json=request(services=tuple(Service))).json()
    assert problems(body, "order-sign") == []
    assert {
        e["policyId"] for c in body["cards"] for e in c["extension"]["dli-hpc-cds.evaluations"]
    } == {"molina-mcp-210"}
    cards = body["cards"]
    assert all(c["source"]["label"] == "Molina Healthcare" for c in cards)
    # Criteria cards are CRD guideline cards; coverage information is only the systemAction.
    assert all(c["source"]["topic"]["code"] == "guideline" for c in cards)
    actions = body["systemActions"]
    assert [a["resource"]["id"] for a in actions] == ["ram-dli", "ram-hpc"]
    draft = {
        e["resource"]["id"]: e["resource"]
        for e in request(services=tuple(Service))["context"]["draftOrders"]["entry"]
    }
    for action in actions:
        resource = copy.deepcopy(action["resource"])
        info = resource.pop("extension")[-1]
        assert resource == {k: v for k, v in draft[resource["id"]].items() if k != "extension"}
        parts = {p["url"]: p for p in info["extension"]}
        assert parts["coverage"]["valueReference"]["reference"].startswith("Coverage/")
        assert parts["date"]["valueDate"] == "2026-11-21"


def test_order_select_has_cards_but_no_system_actions(client: TestClient) -> None:
    response = client.post(SELECT, json=request("order-select"))
    body = response.json()
    assert response.status_code == 200 and body["cards"]
    assert "systemActions" not in body
    assert problems(body, "order-select") == []


def test_configuration_options(client: TestClient) -> None:
    body = request("order-select", services=tuple(Service))
    body["prefetch"]["coverage"] = None  # all five policies, two orders: 8 + 1 cards
    all_cards = client.post(SELECT, json=body).json()["cards"]
    assert len(all_cards) == 8
    body["extension"] = {"davinci-crd.configuration": {"max-cards": 3, "unknown-option": 1}}
    capped = client.post(SELECT, json=body).json()
    assert len(capped["cards"]) == 3
    assert problems(capped, "order-select") == []
    evaluations = [e for c in capped["cards"] for e in c["extension"]["dli-hpc-cds.evaluations"]]
    assert len(evaluations) == 10  # every (order, policy) still appears exactly once
    body["extension"] = {"davinci-crd.configuration": {"guideline": False}}
    assert client.post(SELECT, json=body).json() == {"cards": []}
    body["extension"] = {"davinci-crd.configuration": {"max-cards": "many"}}
    assert len(client.post(SELECT, json=body).json()["cards"]) == 8  # nonsense ignored
    sign = request(services=tuple(Service))  # Molina: system actions
    sign["extension"] = {"davinci-crd.configuration": {"guideline": False}}
    answer = client.post(SIGN, json=sign).json()
    assert answer["cards"] == [] and len(answer["systemActions"]) == 2
    sign["extension"] = {"davinci-crd.configuration": {"coverage-info": False}}
    answer = client.post(SIGN, json=sign).json()
    assert answer["cards"] and "systemActions" not in answer


@pytest.mark.parametrize("version", [None, "2.0.1", "2.2"])
def test_order_sign_without_a_handled_payer_is_400(client: TestClient, version: str | None) -> None:
    """CRD hook-13 (2.1+): no Coverage whose payer this server handles is a 400 with an
    OperationOutcome; a CRD 2.0.1 client gets the same (no coverage information can be given,
    and Inferno fails a 200 order-sign answer without systemActions)."""
    body = request(services=tuple(Service))
    body["prefetch"]["coverage"] = None
    if version is not None:
        body["extension"] = {"davinci-crd.requestedVersion": version}
    assert_outcome(client.post(SIGN, json=body), 400, "carries no Coverage")
    unknown = copy.deepcopy(request(services=tuple(Service)))  # the fixture's own dicts
    for entry in unknown["prefetch"]["coverage"]["entry"]:
        if entry["resource"]["resourceType"] == "Coverage":
            entry["resource"]["payor"] = [{"display": "Acme Health Plan"}]
    assert_outcome(client.post(SIGN, json=unknown), 400, "names a payer whose policy")


def test_card_detail_escapes_record_text(client: TestClient) -> None:
    body = request()
    condition = body["prefetch"]["conditions"]["entry"][0]["resource"]
    condition["code"]["text"] = "AML [click](https://evil.example) <script>x</script>"
    details = [c["detail"] for c in client.post(SIGN, json=body).json()["cards"]]
    assert any(r"AML \[click\]() \<script\>x\</script\>" in d for d in details)
    assert not any("[click](" in d or "<script>" in d or "evil.example" in d for d in details)


def test_card_detail_blocks_are_separate_markdown_paragraphs(client: TestClient) -> None:
    """GFM joins lines separated by a single newline; each header line is its own paragraph."""
    detail = client.post(SIGN, json=request()).json()["cards"][0]["detail"]
    assert detail.startswith("**Next step:** Sign the order")
    assert "\n\n**Molina Healthcare MCP-210:** Donor lymphocyte infusion meets the criteria." in detail
    assert "meets the criteria.\n\n- **Met**:" in detail
