"""Every fact in its three states: documented present, documented absent, not documented.

Pure core, tiny records, no HTTP. A fact is `not-met`-capable only on positive evidence (the
documented-absent rows); silence is always "not documented" (value None), with the note saying
so (cards/README.md, "The evidence rule").
"""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.core.facts import CATALOGUE, Facts
from cds_service.core.model import Order, PatientRecord, Service
from cds_service.core.record import add_prefetch_value
from tests.test_facts import AS_OF, SCT, THRESHOLDS, condition, procedure, quantity

PRESENT, ABSENT, SILENT = "documented present", "documented absent", "not documented"
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
ALLO = procedure("38240", "2025-01-10")
ALLO_PCS = procedure("30233Y3", "2025-01-10", system=PCS)
TCD = procedure("30243U3", "2025-01-10", system=PCS)
AUTO = procedure("38241", "2025-01-10")
CAR_T = procedure("1156961008", "2025-06-01", system=SCT)
ANC, PLT = "751-8", "777-3"
MAC = {"extension": [{"url": "http://dli-hpc-cds.org/fhir/StructureDefinition/conditioning-intensity",
                      "valueCodeableConcept": {"coding": [{"system": "http://dli-hpc-cds.org/fhir/CodeSystem/conditioning-intensity", "code": "MAC"}]}}]}  # fmt: skip


def smoking(value: str, when: str = "2026-01-10") -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": f"smk-{value}", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
        "effectiveDateTime": when, "valueCodeableConcept": {"coding": [{"system": SCT, "code": value}]},
    }  # fmt: skip


def status_obs(value: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": f"ds-{value}-{when}", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "97509-4"}]},
        "effectiveDateTime": when, "valueCodeableConcept": {"coding": [{"system": SCT, "code": value}]},
    }  # fmt: skip


def order(*details: str) -> Order:
    return Order("ServiceRequest/o", Service.DLI, "38242", "http://www.ama-assn.org/go/cpt",
                 AS_OF, frozenset(details), {})  # fmt: skip


def low(loinc: str, *dates: str, value: float = 0.2) -> list[dict[str, Any]]:
    return [quantity(loinc, d, value, "10*3/uL") for d in dates]


# (fact, state, resources, order details or None for "no order", expected value)
CASES: list[tuple[str, str, list[Any], tuple[str, ...] | None, Any]] = [
    ("diagnosis_class", PRESENT, [condition("C92.02", "2025-06-01")], (), "hematologic-malignancy"),
    ("diagnosis_class", ABSENT, [condition("C50.911", "2024-01-01")], (), "other-malignancy"),
    ("diagnosis_class", SILENT, [], (), None),
    ("indication_icd10cm", PRESENT, [condition("C92.00", "2024-01-01")], (), ("C92.00",)),
    ("indication_icd10cm", SILENT, [], (), None),
    # item 1: no transplant on record is not documented; autologous-only is documented absence
    ("hsct_type", PRESENT, [ALLO], (), "allogeneic"),
    ("hsct_type", ABSENT, [AUTO], (), "autologous"),
    ("hsct_type", SILENT, [], (), None),
    ("hsct_type", SILENT, [{**ALLO, "status": "entered-in-error"}], (), None),
    ("hsct_type", SILENT, [{**ALLO, "status": "not-done"}], (), None),
    ("hsct_type", SILENT, [condition("D89.810", "2025-02-01", verificationStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]})], (), None),
    # item 4: CPT 38240 cannot say whether the graft was T-cell depleted
    ("t_cell_depleted_graft", PRESENT, [TCD], (), True),
    ("t_cell_depleted_graft", ABSENT, [ALLO_PCS], (), False),
    ("t_cell_depleted_graft", SILENT, [ALLO], (), None),
    ("conditioning_intensity", PRESENT, [{**ALLO, **MAC}], (), "MAC"),
    ("conditioning_intensity", SILENT, [ALLO], (), None),
    # item 2: any post-transplant relapse; clinicalStatus is current; x0 alone is not refractory
    ("disease_status", PRESENT, [ALLO, condition("C92.02", "2025-08-01"), condition("C92.01", "2026-01-05")], (), "relapsed"),
    ("disease_status", PRESENT, [ALLO, status_obs("271299001", "2025-09-01")], (), "progressive"),
    ("disease_status", ABSENT, [ALLO, condition("C92.00", "2023-01-01", status="remission")], (), "remission"),
    ("disease_status", SILENT, [ALLO, condition("C92.00", "2025-08-01")], (), None),
    ("disease_status", SILENT, [ALLO, condition("C92.01", "2024-11-01", status="active")], (), None),
    ("disease_status", SILENT, [ALLO, {**condition("C92.02", "2025-08-01"), "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}]}}], (), None),
    ("donor_chimerism_pct", PRESENT, [ALLO, quantity("102113-8", "2025-06-01", 80, "%")], (), 80.0),
    ("donor_chimerism_pct", ABSENT, [ALLO, quantity("102113-8", "2025-06-01", 100, "%")], (), 100.0),
    ("donor_chimerism_pct", SILENT, [ALLO], (), None),
    # item 6: chimerism criteria apply to allogeneic grafts only
    ("donor_chimerism_applicable", PRESENT, [ALLO], (), True),
    ("donor_chimerism_applicable", ABSENT, [AUTO], (), False),
    ("donor_chimerism_applicable", ABSENT, [CAR_T], (), False),
    ("donor_chimerism_applicable", SILENT, [], (), None),
    ("acute_gvhd_grade", PRESENT, [condition("402355000", "2025-05-01", system=SCT, stage=[{"summary": {"coding": [{"system": "http://dli-hpc-cds.org/fhir/CodeSystem/gvhd-grade", "code": "aGVHD-II"}]}}])], (), 2.0),
    ("acute_gvhd_grade", ABSENT, [], (), 0.0),
    ("acute_gvhd_grade", SILENT, [condition("402355000", "2025-05-01", system=SCT)], (), None),
    ("acute_gvhd_active", PRESENT, [condition("402355000", "2025-05-01", system=SCT)], (), True),
    ("acute_gvhd_active", ABSENT, [], (), False),
    ("chronic_gvhd_active", PRESENT, [condition("D89.811", "2025-05-01")], (), True),
    ("chronic_gvhd_active", ABSENT, [], (), False),
    # item 3: persistence needs >= 14 days of low counts; recovery needs a normal newest count
    ("poor_graft_function", PRESENT, [ALLO, *low(ANC, "2026-02-01", "2026-02-20")], (), True),
    ("poor_graft_function", PRESENT, [ALLO, condition("T86.01", "2025-06-01")], (), True),
    ("poor_graft_function", PRESENT, [ALLO, procedure("36430", "2026-02-10"), procedure("P9040", "2026-02-20", system=HCPCS)], (), True),
    ("poor_graft_function", PRESENT, [ALLO, procedure("116859006", "2026-02-10", system=SCT), procedure("116863004", "2026-02-24", system=SCT)], (), True),
    ("poor_graft_function", ABSENT, [ALLO, *low(PLT, "2026-01-20"), quantity(PLT, "2026-02-20", 140, "10*3/uL")], (), False),
    ("poor_graft_function", SILENT, [ALLO, *low(ANC, "2026-02-18", "2026-02-25")], (), None),
    ("poor_graft_function", SILENT, [ALLO, *low(PLT, "2026-02-25", value=5)], (), None),
    ("poor_graft_function", SILENT, [ALLO, condition("D70.1", "2026-02-01")], (), None),
    ("poor_graft_function", SILENT, [ALLO], (), None),
    ("poor_graft_function", SILENT, [], (), None),
    ("prior_car_t", PRESENT, [CAR_T], (), True),
    ("prior_car_t", ABSENT, [], (), False),
    ("prior_car_t", SILENT, [{**CAR_T, "status": "entered-in-error"}, {"resourceType": "Procedure", "id": "bad", "code": {"coding": [{"system": SCT, "code": "1156961008"}]}}], (), None),
    ("cytopenia_after_car_t", PRESENT, [CAR_T, *low(ANC, "2026-01-10", "2026-02-20")], (), True),
    ("cytopenia_after_car_t", ABSENT, [CAR_T, quantity(ANC, "2026-02-20", 2.5, "10*3/uL")], (), False),
    ("cytopenia_after_car_t", SILENT, [CAR_T, *low(ANC, "2026-02-20")], (), None),
    # item 5: one rule for every contraindication; alcohol counts; cannabis alone is a judgement
    ("current_substance_use", PRESENT, [condition("F10.20", "2025-06-01")], (), True),
    ("current_substance_use", PRESENT, [smoking("449868002")], (), True),
    ("current_substance_use", ABSENT, [smoking("8517006")], (), False),
    ("current_substance_use", ABSENT, [], (), False),
    ("current_substance_use", SILENT, [condition("F12.90", "2025-06-01")], (), None),
    ("nonadherence", PRESENT, [condition("Z91.19", "2025-01-01")], (), True),
    ("nonadherence", ABSENT, [], (), False),
    ("lacks_social_support", PRESENT, [condition("Z63.8", "2025-01-01")], (), True),
    ("lacks_social_support", ABSENT, [], (), False),
    ("uncontrolled_resistant_infection", PRESENT, [condition("B46.1", "2026-01-05")], (), True),
    ("uncontrolled_resistant_infection", PRESENT, [condition("B44.0", "2026-01-05")], (), True),
    ("uncontrolled_resistant_infection", PRESENT, [condition("Z16.24", "2026-01-01"), condition("A41.9", "2026-01-01")], (), True),
    ("uncontrolled_resistant_infection", ABSENT, [condition("B44.81", "2026-01-05")], (), False),
    ("uncontrolled_resistant_infection", SILENT, [condition("Z16.24", "2026-01-01")], (), None),
    ("product_source", PRESENT, [], ("original-donor",), "original-donor"),
    ("product_source", ABSENT, [], ("different-donor",), "different-donor"),
    ("product_source", SILENT, [], (), None),
    ("product_manipulation", PRESENT, [], ("genetically-modified-product",), "genetically-modified-product"),
    ("product_manipulation", ABSENT, [], ("unmanipulated-product",), "unmanipulated-product"),
    ("product_manipulation", SILENT, [], ("genetically-modified-product", "unmanipulated-product"), None),
    # a plain 38242 / 38243 order says nothing about processing (closed-world audit)
    ("product_manipulation", SILENT, [], (), None),
    # item 4: a missing attestation is not documented, never "no"
    ("high_relapse_risk_attested", PRESENT, [], ("high-relapse-risk",), True),
    ("high_relapse_risk_attested", ABSENT, [], ("not-high-relapse-risk",), False),
    ("high_relapse_risk_attested", SILENT, [], (), None),
    ("other_high_risk_setting", ABSENT, [], (), False),
    ("other_high_risk_setting", SILENT, [], ("high-relapse-risk",), None),
]  # fmt: skip

# Facts without a documented-absent row, and why: conditioning's negative (MAC) is a present value, a code list has no negative (the
# criterion reads it against its list), and BCBSMS's other setting can only
# ever be reviewed, never shown from the record.
NO_ABSENT_STATE = {"conditioning_intensity", "indication_icd10cm"}
NO_PRESENT_STATE = {"other_high_risk_setting"}
# facts whose value on silence is a documented absence by the catalogue's rule (complete lists)
ABSENCE_BY_RULE = {
    "acute_gvhd_active",
    "chronic_gvhd_active",
    "nonadherence",
    "lacks_social_support",
}
NO_SILENT_STATE = ABSENCE_BY_RULE


def fact_of(name: str, resources: list[Any], details: tuple[str, ...] | None) -> Any:
    record = PatientRecord()
    for resource in resources:
        add_prefetch_value(record, resource, str(resource["resourceType"]))
    return Facts(record, None if details is None else order(*details), AS_OF, THRESHOLDS)[name]


@pytest.mark.parametrize(
    ("name", "state", "resources", "details", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1].replace(' ', '-')}-{i}" for i, c in enumerate(CASES)],
)
def test_fact_state(
    name: str, state: str, resources: list[Any], details: tuple[str, ...] | None, expected: Any
) -> None:
    fact = fact_of(name, resources, details)
    assert fact.value == expected
    assert fact.basis == state, fact.note
    if state == SILENT:
        assert fact.note, "an unknown fact says what would settle it"


def test_every_fact_is_tabled_in_each_of_its_states() -> None:
    covered = {(c[0], c[1]) for c in CASES}
    for name in CATALOGUE:
        wanted = {PRESENT, ABSENT, SILENT}
        wanted -= {ABSENT} if name in NO_ABSENT_STATE else set()
        wanted -= {PRESENT} if name in NO_PRESENT_STATE else set()
        wanted -= {SILENT} if name in NO_SILENT_STATE else set()
        assert wanted <= {s for n, s in covered if n == name}, name


def test_the_catalogue_says_what_counts_as_documented_absence() -> None:
    assert all(len(spec.absence) > 20 for spec in CATALOGUE.values())


def test_silence_is_never_a_negative_for_the_record_facts_that_gate_an_order() -> None:
    """An empty record: every fact an allogeneic / indication criterion reads is unknown."""
    for name in ("hsct_type", "t_cell_depleted_graft", "disease_status", "donor_chimerism_pct",
                 "poor_graft_function", "high_relapse_risk_attested", "conditioning_intensity"):  # fmt: skip
        assert fact_of(name, [], ()).value is None, name
