"""Every scenario patient through the real HTTP API, against its declared determinations."""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.core.facts import CATALOGUE
from cds_service.core.model import Service
from cds_service.core.policy import FactTest, Node, Policy
from cds_service.policy_store import load
from cds_service.scenarios import (
    FIXTURES_DIR,
    Scenario,
    build_request,
    load_scenarios,
    service_id,
)
from tests.conformance import problems

SCENARIOS = load_scenarios()
SCENARIOS_BY_ID = {s.id: s for s in SCENARIOS}
POLICY_IDS = sorted(p.id for p in load().policies)
EVALUATIONS = "dli-hpc-cds.evaluations"


def evaluations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for card in body["cards"] for e in card["extension"][EVALUATIONS]]


@cache
def all_payer_body(client: TestClient, scenario_id: str, service: Service) -> dict[str, Any]:
    """The order-select response with no Coverage, so every policy is evaluated (order-sign
    answers only for a handled payer: core/payer_scope.py)."""
    scenario = next(s for s in SCENARIOS if s.id == scenario_id)
    request = build_request(scenario.bundle(), "order-select", (service,))
    request["prefetch"]["coverage"] = None
    response = client.post(f"/cds-services/{service_id('order-select')}", json=request)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_there_are_at_least_25_scenarios() -> None:
    assert len(SCENARIOS) >= 25
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


def test_every_scenario_expects_every_policy_for_both_services_with_a_reason() -> None:
    for scenario in SCENARIOS:
        assert sorted(scenario.expected) == sorted(s.value for s in Service), scenario.id
        for service, per_policy in scenario.expected.items():
            assert sorted(per_policy) == POLICY_IDS, (scenario.id, service)
            assert sorted(scenario.reasons[service]) == POLICY_IDS, (scenario.id, service)
            assert all(r.strip() for r in scenario.reasons[service].values()), scenario.id


def test_adding_a_scenario_is_adding_one_file(tmp_path: Path) -> None:
    source = FIXTURES_DIR / "relapsed-aml-allo-mac.yaml"
    (tmp_path / "new-patient.yaml").write_text(source.read_text(encoding="utf-8"))
    [added] = load_scenarios(tmp_path)
    assert (
        added.id == "new-patient" and added.title == SCENARIOS_BY_ID["relapsed-aml-allo-mac"].title
    )
    assert added.bundle() == SCENARIOS_BY_ID["relapsed-aml-allo-mac"].bundle() | {
        "id": "new-patient-bundle"
    }
    assert added.reasons["dli"]["molina-mcp-210"].startswith("met")


def test_a_scenario_header_with_a_mistake_names_the_file(tmp_path: Path) -> None:
    text = (FIXTURES_DIR / "relapsed-aml-allo-mac.yaml").read_text(encoding="utf-8")
    (tmp_path / "typo.yaml").write_text(text.replace("is: meets-criteria", "is: meets", 1))
    with pytest.raises(
        ValueError, match=r"(?s)typo\.yaml: .*expected\.dli.*wellmark-07\.03\.13.*is"
    ):
        load_scenarios(tmp_path)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
@pytest.mark.parametrize("service", list(Service), ids=lambda s: s.value)
def test_declared_determinations(client: TestClient, scenario: Scenario, service: Service) -> None:
    body = all_payer_body(client, scenario.id, service)
    got = {e["policyId"]: e["determination"] for e in evaluations(body)}
    assert sorted(got) == POLICY_IDS, "every policy evaluated exactly once"
    assert got == scenario.expected[service.value]
    assert problems(body, "order-select") == []
    assert "systemActions" not in body  # no recognised payer: no coverage assertion


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.payer], ids=lambda s: s.id)
def test_scenario_payer_routing(client: TestClient, scenario: Scenario) -> None:
    """With the scenario's own Coverage: only that payer's policy, plus the CRD system action."""
    request = build_request(scenario.bundle(), "order-sign", tuple(Service))
    response = client.post(f"/cds-services/{service_id('order-sign')}", json=request)
    body = response.json()
    if scenario.payer == "unrecognised":  # CRD hook-13: not a payer this service handles
        assert response.status_code == 400 and body["resourceType"] == "OperationOutcome"
        return
    assert response.status_code == 200
    assert problems(body, "order-sign") == []
    found = evaluations(body)
    assert scenario.payer is not None
    assert {e["policyId"] for e in found} == {scenario.payer}
    for e in found:
        assert e["determination"] == scenario.expected[e["service"]][scenario.payer]
    covered = {
        "meets-criteria": "covered",
        "does-not-meet-criteria": "not-covered",
        "needs-information": "conditional",
        "not-addressed": "conditional",
    }
    actions = body["systemActions"]
    assert len(actions) == 2  # one per draft order
    for action in actions:
        order = f"ServiceRequest/{action['resource']['id']}"
        determination = next(e["determination"] for e in found if e["order"] == order)
        info = action["resource"]["extension"][-1]["extension"]
        assert {"url": "covered", "valueCode": covered[determination]} in info


def test_every_criterion_is_met_and_not_met_somewhere(client: TestClient) -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for scenario in SCENARIOS:
        for service in Service:
            for evaluation in evaluations(all_payer_body(client, scenario.id, service)):
                for criterion in evaluation.get("criteria", []):
                    seen[criterion["id"]].add(criterion["status"])
    policies = load().policies
    all_ids = [
        node.id
        for p in policies
        for s in Service
        if (rule := p.rule(s)) is not None
        for node in rule.walk()
        if node is not rule
    ]
    reviewer_only = {n.id for p in policies for n in _walk_all(p) if _never_not_met(n)}
    wanted = {
        i: {"met", "unknown"}
        if i in reviewer_only
        else {"met", "not-met"} - ONE_SIDED.get(i, set())
        for i in all_ids
    }
    lacking = {i: sorted(seen[i]) for i in all_ids if not wanted[i] <= seen[i]}
    assert lacking == {}
    assert all(ONE_SIDED[i] & seen[i] == set() for i in ONE_SIDED), "a one-sided criterion flipped"


# Criteria that by the evidence rule (cards/README.md) can take only one of met / not-met:
# "follows a (any) transplant" has no documented negative (no record proves a patient was never
# transplanted: silence is unknown), and BCBSMS's unnamed high-risk setting is medical director
# review, never met from the record.
ONE_SIDED = {
    "wellmark-hpc-prior-hsct": {"not-met"},
    "molina-hpc-follows-hsct": {"not-met"},
    "molina-hpc-hsct-documented": {"not-met"},
    "molina-hpc-follows-treatment": {"not-met"},
    "bcbsms-dli-other-high-risk-setting": {"met"},
}


def _walk_all(policy: Policy) -> list[Node]:
    return [n for s in Service if (rule := policy.rule(s)) is not None for n in rule.walk()]


def _never_not_met(node: Node) -> bool:
    """A leaf whose review_if covers every value its test rejects: by design it is never
    not-met (the policy leaves every such case to a reviewer), so it must show unknown."""
    test, review = node.test, node.review_if
    if test is None or review is None or test.fact != review.fact:
        return False
    domain = CATALOGUE[test.fact].values
    if domain is None:
        return False

    def accepted(t: FactTest) -> set[str]:
        values: list[Any] = t.in_ or [t.equals]
        return {str(v) for v in values}

    return set(domain) - accepted(test) <= accepted(review)


@pytest.mark.parametrize(
    ("scenario_id", "shown"),
    [("acute-gvhd-grade-3", True), ("acute-gvhd-ungraded", True), ("relapsed-aml-allo-mac", False)],
)
def test_molina_overview_advisory_never_changes_the_determination(
    client: TestClient, scenario_id: str, shown: bool
) -> None:
    """Any active acute GVHD shows the overview note, graded or not; none shows nothing."""
    body = all_payer_body(client, scenario_id, Service.DLI)
    label = "Payer policy comparison: Molina Healthcare"  # all payers: a comparison card
    molina = next(c for c in body["cards"] if c["source"]["label"] == label)
    note = "Overview (not a coverage criterion): DLI should be avoided with active"
    assert (note in molina["detail"]) is shown
    expected = next(s for s in SCENARIOS if s.id == scenario_id).expected["dli"]
    assert molina["extension"][EVALUATIONS][0]["determination"] == expected["molina-mcp-210"]
