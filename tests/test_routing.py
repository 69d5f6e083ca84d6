"""Order recognition and payer routing (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.core.model import PatientRecord, Service
from cds_service.core.orders import recognise
from cds_service.core.payer import payer_organizations_to_read, route
from cds_service.core.record import add_resource
from cds_service.policy_store import load

POLICIES = load().policies
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
CPT = "http://www.ama-assn.org/go/cpt"


@pytest.mark.parametrize(
    ("system", "code", "service"),
    [(CPT, "38242", Service.DLI), (CPT, "38243", Service.HPC_BOOST), (PCS, "30233Q1", Service.DLI),
     (PCS, "30243Q1", Service.DLI), (CPT, "38240", None), ("http://example.org/cpt", "38242", None)],
)  # fmt: skip
def test_recognise_orders(system: str, code: str, service: Service | None) -> None:
    order = recognise({"resourceType": "ServiceRequest", "id": "x",
                       "code": {"coding": [{"system": system, "code": code}]}})  # fmt: skip
    assert (order.service if order else None) is service


def coverage(
    payor: dict[str, Any], contained: list[dict[str, Any]] | None = None, status: str = "active"
) -> dict[str, Any]:
    resource = {"resourceType": "Coverage", "id": "cov", "status": status,
                "beneficiary": {"reference": "Patient/p"}, "payor": [payor]}  # fmt: skip
    if contained:
        resource["contained"] = contained
    return resource


def routed(*resources: dict[str, Any]) -> tuple[str, ...]:
    record = PatientRecord()
    for resource in resources:
        add_resource(record, resource)
    result = route(record, POLICIES)
    return tuple(p.id for p in result.policies) if result.recognised else ("all",)


ORG = {"resourceType": "Organization", "id": "org"}
ROUTES = [
    ("contained org by alias", coverage({"reference": "#org"}, [{**ORG, "name": "Ambetter from Sunflower Health Plan"}]), ("centene-cp.mp.101",)),
    ("contained org by identifier", coverage({"reference": "#org"}, [{**ORG, "name": "Plan", "identifier": [{"system": "http://dli-hpc-cds.org/fhir/sid/payer", "value": "anthem"}]}]), ("anthem-cg-trans-03",)),
    ("logical identifier", coverage({"identifier": {"system": "http://dli-hpc-cds.org/fhir/sid/payer", "value": "wellmark"}}), ("wellmark-07.03.13",)),
    ("display only, & vs and", coverage({"display": "Blue Cross and Blue Shield of Mississippi"}), ("bcbsms-l.2.03.402",)),
    ("plain Blue Cross is not Mississippi or Wellmark", coverage({"display": "Blue Cross Blue Shield of Texas"}), ("all",)),
    ("inactive coverage is ignored", coverage({"display": "Molina Healthcare"}, status="cancelled"), ("all",)),
    ("no coverage", None, ("all",)),
]  # fmt: skip


@pytest.mark.parametrize(("why", "resource", "expected"), ROUTES, ids=[r[0] for r in ROUTES])
def test_payer_routing(
    why: str, resource: dict[str, Any] | None, expected: tuple[str, ...]
) -> None:
    assert routed(*([resource] if resource else [])) == expected


def test_payer_organization_in_the_record() -> None:
    org = {**ORG, "name": "Molina Healthcare of Texas"}
    assert routed(org, coverage({"reference": "Organization/org"})) == ("molina-mcp-210",)


NAMED = {"system": "http://dli-hpc-cds.org/fhir/sid/payer"}


def test_primary_coverage_decides_whatever_the_listing_order() -> None:
    """Coverage.order 1 is primary: it decides even when the EHR lists the secondary first."""
    secondary = {**coverage({"display": "Molina Healthcare"}), "id": "sec", "order": 2}
    primary = {**coverage({"identifier": {**NAMED, "value": "anthem"}}), "id": "pri", "order": 1}
    record = PatientRecord()
    for resource in (secondary, primary):
        add_resource(record, resource)
    result = route(record, POLICIES)
    assert [p.id for p in result.policies] == ["anthem-cg-trans-03"]
    assert result.coverage is not None and result.coverage.id == "pri"


def test_coverage_without_order_comes_after_those_with_one() -> None:
    unordered = {**coverage({"display": "Molina Healthcare"}), "id": "a"}
    ordered = {**coverage({"display": "Wellmark"}), "id": "b", "order": 1}
    assert routed(unordered, ordered) == ("wellmark-07.03.13",)


def test_plan_name_in_coverage_class_routes_when_the_payor_does_not() -> None:
    resource = coverage({"reference": "Organization/unknown-org"})
    resource["class"] = [
        {"type": {"text": "plan"}, "value": "AMB-5", "name": "Ambetter Balanced Care 5"}
    ]
    assert routed(resource) == ("centene-cp.mp.101",)


def test_which_payer_organizations_the_api_must_read() -> None:
    record = PatientRecord()
    add_resource(record, coverage({"reference": "Organization/org-1"}))
    assert payer_organizations_to_read(record, POLICIES) == ("org-1",)
    add_resource(record, {**ORG, "id": "org-1", "name": "Molina Healthcare"})
    assert payer_organizations_to_read(record, POLICIES) == ()  # held, and recognised


def test_no_read_when_the_payor_identifier_already_routes() -> None:
    record = PatientRecord()
    payor = {"reference": "Organization/org-2", "identifier": {**NAMED, "value": "molina"}}
    add_resource(record, coverage(payor))
    assert payer_organizations_to_read(record, POLICIES) == ()


def test_contained_and_absolute_references_are_not_read() -> None:
    record = PatientRecord()
    add_resource(record, coverage({"reference": "#org"}))
    add_resource(
        record, {**coverage({"reference": "https://other.example/fhir/Organization/9"}), "id": "c2"}
    )
    assert payer_organizations_to_read(record, POLICIES) == ()
