"""The published request schemas are the ones the service validates with: every scenario request
(order-sign, order-select, appointment-book, order-dispatch) and a feedback body conform to what /openapi.json says, and the
service accepts them."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from cds_service.core import Service
from cds_service.policy_store import load
from cds_service.scenarios import Scenario, build_request, load_scenarios, service_id

SCENARIOS = load_scenarios()
HOOK_PATH, FEEDBACK_PATH = "/cds-services/{service_id}", "/cds-services/{service_id}/feedback"


@pytest.fixture(scope="module")
def published(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def _validator(document: dict[str, Any], path: str) -> Any:
    content = document["paths"][path]["post"]["requestBody"]["content"]
    return jsonschema_rs.validator_for(content["application/json"]["schema"])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
@pytest.mark.parametrize("hook", ["order-sign", "order-select", "appointment-book", "order-dispatch"])
def test_scenario_requests_conform_to_the_published_schema(
    published: dict[str, Any], client: TestClient, scenario: Scenario, hook: str
) -> None:
    request = build_request(scenario.bundle(), hook, tuple(Service))
    if hook != "order-dispatch":  # order-dispatch has no userId
        request["context"]["userId"] = (
            "PractitionerRole/onc-1"  # the model allows it: so must the schema
        )
    _validator(published, HOOK_PATH).validate(request)
    response = client.post(f"/cds-services/{service_id(hook)}", json=request)
    # order-sign without a payer it handles: the documented 400 of CRD hook-13
    refused = hook != "order-select" and scenario.payer not in {p.id for p in load().policies}
    assert response.status_code == (400 if refused else 200), response.text


def test_feedback_conforms_to_the_published_schema(published: dict[str, Any]) -> None:
    item = {
        "card": "00000000-0000-4000-8000-000000000001",
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": "http://example.org/reasons", "code": "x"}},
        "outcomeTimestamp": "2026-11-21T09:30:00Z",
    }
    validator = _validator(published, FEEDBACK_PATH)
    validator.validate({"feedback": [item]})
    assert not validator.is_valid({"feedback": []})  # min_length=1 in the model
    assert not validator.is_valid({"feedback": [{**item, "outcome": "ignored"}]})
