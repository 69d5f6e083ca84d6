"""Order recognition and payer routing (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.core.model import PatientRecord, Service
from cds_service.core.orders import recognise
from cds_service.core.payer import route
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
