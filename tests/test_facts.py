"""Fact extraction: every scenario's declared facts, and table-driven edge cases."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest

from cds_service.api.discovery import OPTIONAL_PREFETCH, PREFETCH, REQUIRED_PREFETCH
from cds_service.bench.workload import order_sign_request
from cds_service.core import codes
from cds_service.core.facts import (
    CATALOGUE,
    OBSERVATION_CODES,
    OBSERVATION_LOINC,
    RECORD_READERS,
    Facts,
    relevance,
)
from cds_service.core.facts.relevance import relevance_filter
from cds_service.core.model import PatientRecord, Service
from cds_service.core.orders import recognise
from cds_service.core.record import add_prefetch_value
from cds_service.policy_store import load
from cds_service.scenarios import Scenario, draft_orders, load_scenarios, prefetch_for, resources

THRESHOLDS = load().thresholds
SCENARIOS = load_scenarios()
ORDER_FACTS = ("product_source", "product_manipulation", "high_relapse_risk_attested")
TYPES = {**REQUIRED_PREFETCH, **OPTIONAL_PREFETCH}


def record_of(bundle: dict[str, Any]) -> PatientRecord:
    record = PatientRecord()
    prefetch = prefetch_for(bundle)
    for key, resource_type in TYPES.items():
        add_prefetch_value(record, prefetch.get(key), resource_type)
    return record


def facts_for(bundle: dict[str, Any], service: Service) -> Facts:
    order = recognise(draft_orders(bundle, (service,))[0])
    assert order is not None and order.authored_on is not None
    return Facts(record_of(bundle), order, order.authored_on, THRESHOLDS)


def normal(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_scenario_facts_match_their_declaration(scenario: Scenario) -> None:
    declared = scenario.facts
    bundle = scenario.bundle()
    dli = facts_for(bundle, Service.DLI)
    got = {name: normal(dli[name].value) for name in declared["record"]}
    assert got == declared["record"]
    for service in Service:
        facts = facts_for(bundle, service)
        expected = declared[service.value]
        assert {n: normal(facts[n].value) for n in expected} == expected


def test_every_catalogue_fact_is_declared_somewhere() -> None:
    declared = {n for s in SCENARIOS for part in s.facts.values() for n in part}
    assert declared == set(CATALOGUE)


# --- edge cases on tiny records -------------------------------------------------------------
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"
AS_OF = date(2026, 3, 1)


def condition(
    code: str, onset: str, system: str = ICD, status: str = "active", **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": f"c-{code}-{onset}", "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": system, "code": code}]}, "onsetDateTime": onset,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
        **extra,
    }  # fmt: skip


def procedure(code: str, when: str, system: str = CPT, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Procedure", "id": f"p-{code}-{when}", "status": "completed",
        "subject": {"reference": "Patient/p"}, "performedDateTime": when,
        "code": {"coding": [{"system": system, "code": code}]}, **extra,
    }  # fmt: skip


def quantity(loinc: str, when: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": f"o-{loinc}-{when}", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]}, "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }  # fmt: skip


def fact(name: str, *resources: Any, broken: tuple[dict[str, Any], ...] = ()) -> Any:
    record = PatientRecord()
    for resource in (*resources, *broken):
        add_prefetch_value(record, resource, str(resource["resourceType"]))
    return Facts(record, None, AS_OF, THRESHOLDS)[name].value


ALLO = procedure("38240", "2025-01-10")
ANC = "751-8"

CASES = [
    # diagnosis class: heme beats other malignancy; MDS is heme; Z85.3 history is other
    ("diagnosis_class", [condition("C50.911", "2020-01-01"), condition("C92.00", "2024-06-01")], "hematologic-malignancy"),
    ("diagnosis_class", [condition("D46.22", "2024-06-01")], "hematologic-malignancy"),
    ("diagnosis_class", [condition("Z85.3", "2019-01-01")], "other-malignancy"),
    ("diagnosis_class", [condition("D61.3", "2024-01-01")], "non-malignant"),
    ("diagnosis_class", [condition("I10", "2024-01-01")], None),
    # ICD-10-GM-style T86.02 under ICD-10-CM is graft failure, but only with the right system
    ("poor_graft_function", [ALLO, condition("T86.02", "2025-06-01", system="http://fhir.de/CodeSystem/bfarm/icd-10-gm")], None),
    ("poor_graft_function", [ALLO, condition("T86.02", "2025-06-01")], True),
    # transplant type
    ("hsct_type", [procedure("38241", "2025-01-10")], "autologous"),
    ("hsct_type", [procedure("30243U3", "2025-01-10", system="http://www.cms.gov/Medicare/Coding/ICD10")], "allogeneic"),
    ("t_cell_depleted_graft", [procedure("30243U3", "2025-01-10", system="http://www.cms.gov/Medicare/Coding/ICD10")], True),
    ("t_cell_depleted_graft", [ALLO], None),  # CPT 38240 cannot say
    ("hsct_type", [condition("Z94.84", "2025-02-01")], None),
    ("hsct_type", [condition("D89.810", "2025-02-01")], "allogeneic"),
    ("hsct_type", [], None),  # no transplant on record: not documented
    ("hsct_type", [procedure("38240", "2026-06-01")], None),  # after the as-of date: ignored
    # disease status: latest wins unless a relapse followed the transplant; x0 alone is not
    # refractory; lymphoma "A" = remission
    ("disease_status", [ALLO, condition("C92.02", "2025-09-01"), condition("C92.01", "2026-01-05")], "relapsed"),
    ("disease_status", [ALLO, condition("C92.00", "2024-05-01")], None),
    ("disease_status", [ALLO, condition("C92.00", "2025-08-01")], None),
    ("disease_status", [ALLO, condition("C83.3A", "2025-08-01")], "remission"),
    ("disease_status", [ALLO, condition("C83.30", "2025-08-01", status="relapse")], "relapsed"),
    ("disease_status", [condition("C92.02", "2025-09-01")], None),  # no transplant to place it after
    # chimerism: recipient fraction is converted; latest wins; results before the transplant ignored
    ("donor_chimerism_pct", [ALLO, quantity("104480-9", "2025-06-01", 12, "%")], 88.0),
    ("donor_chimerism_pct", [ALLO, quantity("102113-8", "2025-03-01", 99, "%"), quantity("102113-8", "2025-12-01", 64, "%")], 64.0),
    ("donor_chimerism_pct", [ALLO, quantity("102113-8", "2024-12-01", 50, "%")], None),
    # cytopenia units: 400 /uL is 0.4 x10^9/L; persistence needs >= 14 days of low results
    ("poor_graft_function", [ALLO, quantity(ANC, "2026-02-01", 400, "/uL"), quantity(ANC, "2026-02-20", 300, "/uL")], True),
    ("poor_graft_function", [ALLO, quantity(ANC, "2026-02-10", 0.3, "10*3/uL"), quantity(ANC, "2026-02-20", 0.3, "10*3/uL")], None),  # 10 days
    ("poor_graft_function", [ALLO, quantity(ANC, "2026-01-20", 0.3, "10*3/uL"), quantity(ANC, "2026-02-20", 2.1, "10*3/uL")], False),
    ("poor_graft_function", [ALLO], None),
    # GVHD grade
    ("acute_gvhd_grade", [condition("402355000", "2025-05-01", system=SCT, stage=[{"summary": {"coding": [{"system": "http://dli-hpc-cds.org/fhir/CodeSystem/gvhd-grade", "code": "aGVHD-III"}]}}])], 3.0),
    ("acute_gvhd_grade", [condition("402355000", "2025-05-01", system=SCT)], None),
    ("acute_gvhd_grade", [condition("402355000", "2025-05-01", system=SCT, status="resolved")], 0.0),
    # any active acute GVHD, graded or not (Molina overview advisory): present / absent
    ("acute_gvhd_active", [condition("402355000", "2025-05-01", system=SCT)], True),
    ("acute_gvhd_active", [condition("402355000", "2025-05-01", system=SCT, status="resolved")], False),
    ("acute_gvhd_active", [], False),
    # contraindications
    ("current_substance_use", [condition("F17.211", "2020-01-01")], False),  # in remission
    ("current_substance_use", [condition("F12.20", "2025-01-01")], None),  # cannabis alone
    ("uncontrolled_resistant_infection", [condition("Z16.24", "2026-01-01")], None),
    ("uncontrolled_resistant_infection", [condition("Z16.24", "2026-01-01"), condition("A41.9", "2026-01-01")], True),
    ("nonadherence", [condition("Z91.19", "2025-01-01")], True),
    ("nonadherence", [], False),
]  # fmt: skip


@pytest.mark.parametrize(("name", "resources", "expected"), CASES)
def test_fact_edge_cases(name: str, resources: list[dict[str, Any]], expected: Any) -> None:
    assert fact(name, *resources) == expected


def test_unreadable_relevant_resource_makes_the_fact_unknown() -> None:
    broken = {
        "resourceType": "Observation",
        "id": "bad",
        "code": {"coding": [{"system": LOINC, "code": "102113-8"}]},
    }
    good = quantity("102113-8", "2025-06-01", 90, "%")
    assert fact("donor_chimerism_pct", ALLO, good) == 90.0
    assert fact("donor_chimerism_pct", ALLO, good, broken=(broken,)) is None
    # an unreadable Observation about something else leaves chimerism alone
    other = {**broken, "code": {"coding": [{"system": LOINC, "code": "718-7"}]}}
    assert fact("donor_chimerism_pct", ALLO, good, broken=(other,)) == 90.0
    # an unreadable acute GVHD Condition: whether acute GVHD is active is not documented
    bad_gvhd = {"resourceType": "Condition", "id": "badg", "onsetDateTime": "not a date",
                "code": {"coding": [{"system": SCT, "code": "402355000"}]}}  # fmt: skip
    assert fact("acute_gvhd_active", broken=(bad_gvhd,)) is None
    # positive findings survive: an allogeneic transplant stays allogeneic
    bad_procedure = {"resourceType": "Procedure", "id": "badp", "code": {"text": "?"}}
    assert fact("hsct_type", ALLO, broken=(bad_procedure,)) == "allogeneic"
    assert fact("hsct_type", broken=(bad_procedure,)) is None


def _all_facts(facts: Facts) -> dict[str, Any]:
    return {
        name: (normal(facts[name].value), sorted(e.reference for e in facts[name].evidence))
        for name in CATALOGUE
    }


WORKLOADS = [(s.id, s.bundle()) for s in SCENARIOS]


@pytest.mark.parametrize(("name", "bundle"), WORKLOADS, ids=[w[0] for w in WORKLOADS])
def test_relevance_filter_changes_no_fact(name: str, bundle: dict[str, Any]) -> None:
    """Skipping resources no fact reads (and validating observations lazily) is invisible."""
    for service in Service:
        order = recognise(draft_orders(bundle, (service,))[0])
        assert order is not None and order.authored_on is not None
        since = order.authored_on - timedelta(days=THRESHOLDS.cytopenia_lookback_days)
        prefetch = prefetch_for(bundle)
        full, filtered = PatientRecord(), PatientRecord()
        for key, resource_type in TYPES.items():
            add_prefetch_value(full, prefetch.get(key), resource_type)
            add_prefetch_value(filtered, prefetch.get(key), resource_type, relevance_filter(since))
        expected = _all_facts(Facts(full, order, order.authored_on, THRESHOLDS))
        assert _all_facts(Facts(filtered, order, order.authored_on, THRESHOLDS)) == expected


@pytest.mark.parametrize("size", [300, 1500])
def test_relevance_filter_on_long_records(size: int) -> None:
    request = order_sign_request(size)
    order = recognise(request["context"]["draftOrders"]["entry"][0]["resource"])
    assert order is not None and order.authored_on is not None
    since = order.authored_on - timedelta(days=THRESHOLDS.cytopenia_lookback_days)
    full, filtered = PatientRecord(), PatientRecord()
    for key, resource_type in TYPES.items():
        add_prefetch_value(full, request["prefetch"][key], resource_type)
        add_prefetch_value(
            filtered, request["prefetch"][key], resource_type, relevance_filter(since)
        )
    assert len(filtered.conditions) < len(full.conditions)
    expected = _all_facts(Facts(full, order, order.authored_on, THRESHOLDS))
    assert _all_facts(Facts(filtered, order, order.authored_on, THRESHOLDS)) == expected


def _code_universe() -> set[tuple[str, str]]:
    """Every code named in core/codes.py or on a fixture Observation, under every system."""
    names: set[str] = set()
    for value in vars(codes).values():
        if isinstance(value, frozenset | set | dict):
            names |= {v for v in value if isinstance(v, str)}
        elif isinstance(value, str) and not value.startswith("http"):
            names.add(value)
    pairs = set()
    for scenario in SCENARIOS:
        for resource in resources(scenario.bundle()):
            if resource["resourceType"] == "Observation":
                pairs |= {(c.get("system", ""), c["code"]) for c in resource["code"]["coding"]}
    systems = {codes.LOINC, codes.SNOMED, codes.ICD10CM, ""} | {s for s, _ in pairs}
    return pairs | {(s, n) for s in systems for n in names}


def test_the_observations_prefetch_asks_for_every_code_a_fact_reads() -> None:
    query = parse_qs(PREFETCH["observations"].split("?", 1)[1])
    fetched = {tuple(t.split("|", 1)) for t in query["code"][0].split(",")}
    assert fetched == set(OBSERVATION_CODES)
    assert {(codes.LOINC, c) for c in OBSERVATION_LOINC} <= fetched
    universe = _code_universe() | set(OBSERVATION_CODES)
    for module in RECORD_READERS:  # each module's READS accepts exactly the codes it declares
        reads = module.READS.get("Observation")
        declared = {(codes.LOINC, c) for c in getattr(module, "OBSERVATION_LOINC", ())}
        declared |= set(getattr(module, "OBSERVATION_CODES", ()))
        accepted = {pair for pair in universe if reads and reads(*pair)}
        assert accepted == declared, module.__name__
    checked = 0
    for scenario in SCENARIOS:  # end to end: what a fact reads arrives in the prefetch
        bundle = scenario.bundle()
        read = {
            r["id"]
            for r in resources(bundle)
            if r["resourceType"] == "Observation"
            and any(
                relevance.reads("Observation", c["system"], c["code"]) for c in r["code"]["coding"]
            )
        }
        sent = {e["resource"]["id"] for e in prefetch_for(bundle)["observations"]["entry"]}
        assert read <= sent, scenario.id
        checked += len(read)
    assert checked > 100  # the scenarios do carry the observations the facts read
