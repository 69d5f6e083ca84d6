"""A record that merely lacks the data never gets "does not meet" / "not-covered".

A DLI and an HPC boost order, bare (no order details), fired through the HTTP API with only a
Patient, and with only a Patient and a Coverage naming each of the five payers.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.core.model import Service
from cds_service.policy_store import load
from cds_service.scenarios import build_request, find_scenario, set_payer
from tests.hooks import post_order

POLICIES = load().policies
EVALUATIONS = "dli-hpc-cds.evaluations"
# CP.MP.101, CG-TRANS-03 and L.2.03.402 state no HPC-boost criteria (not-addressed, conditional)
NOT_ADDRESSED = {(p.id, s) for p in POLICIES for s in Service if p.rule(s) is None}


def _bare_bundle() -> dict[str, Any]:
    """The Patient and two draft orders of a scenario, without anything else."""
    bundle = copy.deepcopy(find_scenario("relapsed-aml-allo-mac").bundle())
    kept = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "ServiceRequest":
            resource.pop("orderDetail", None)
            resource.pop("requester", None)
        if resource["resourceType"] in ("Patient", "ServiceRequest"):
            kept.append(entry)
    return {**bundle, "entry": kept}


def _fire(client: TestClient, prefetch_payer: Any) -> dict[str, Any]:
    request = build_request(_bare_bundle(), "order-sign", tuple(Service))
    set_payer(request["prefetch"], prefetch_payer)
    response = post_order(client, request)  # no payer handled: order-select compares them
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _determinations(body: dict[str, Any]) -> dict[tuple[str, Service], str]:
    return {
        (e["policyId"], Service(e["service"])): e["determination"]
        for card in body["cards"]
        for e in card["extension"][EVALUATIONS]
    }


def _expected(policy_id: str, service: Service) -> str:
    return "not-addressed" if (policy_id, service) in NOT_ADDRESSED else "needs-information"


def test_only_a_patient_is_needs_information_for_every_policy(client: TestClient) -> None:
    found = _determinations(_fire(client, None))
    assert found == {(p.id, s): _expected(p.id, s) for p in POLICIES for s in Service}


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.id)
def test_only_a_coverage_is_needs_information_and_conditional(
    client: TestClient, policy: Any
) -> None:
    body = _fire(client, policy)
    found = _determinations(body)
    assert found == {(policy.id, s): _expected(policy.id, s) for s in Service}
    actions = body["systemActions"]
    assert len(actions) == 2  # one per draft order
    for action in actions:
        info = action["resource"]["extension"][-1]["extension"]
        assert {"url": "covered", "valueCode": "conditional"} in info
        assert not any(i.get("valueCode") == "not-covered" for i in info)
