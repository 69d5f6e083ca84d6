"""Realistic order-sign requests of a chosen size: a scenario patient plus years of history.

The history is what a long transplant course leaves in an EHR: weekly blood counts, periodic
chimerism, vital signs and chemistry labs (which the prefetch template would not ask for, so
they are not added to `observations`), recurring problem-list entries and procedures, and the
conditioning regimen's administrations and orders (the medication prefetch keys: busulfan and
fludarabine, daily, before the transplant; earlier fludarabine courses).
"""

from __future__ import annotations

import copy
import random
from datetime import date, timedelta
from typing import Any

from cds_service.api.discovery import OPTIONAL_PREFETCH, REQUIRED_PREFETCH
from cds_service.core import Service
from cds_service.scenarios import build_request, find_scenario

LOINC = "http://loinc.org"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_KEYS = (*REQUIRED_PREFETCH, *OPTIONAL_PREFETCH)  # the Bundle-valued prefetch keys
_COUNTS = (
    ("751-8", 1.2, 4.5, "10*3/uL"),
    ("777-3", 90, 260, "10*3/uL"),
    ("718-7", 9.5, 14.0, "g/dL"),
)
_PROBLEMS = ("I10", "E11.9", "E78.5", "K21.9", "M81.0", "N18.3", "J45.909", "F41.1", "G47.00",
             "E03.9", "D64.81", "B25.9", "L30.9", "R53.83")  # fmt: skip
_PROCEDURES = ("36430", "96413", "38221", "77080", "71046", "93306", "36556", "85097")


def _observation(
    i: int, code: str, when: date, value: float, unit: str, patient: str
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"bench-o{i}",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"{when.isoformat()}T08:30:00-05:00",
        "valueQuantity": {"value": round(value, 2), "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }  # fmt: skip


def order_sign_request(size: int, seed: int = 7) -> dict[str, Any]:
    """An order-sign request for the relapsed-AML scenario with about `size` prefetched resources."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible benchmark data, not security
    scenario = find_scenario("relapsed-aml-allo-mac")
    request = build_request(scenario.bundle(), "order-sign", (Service.DLI,))
    prefetch = request["prefetch"]
    patient = request["context"]["patientId"]
    as_of = date.fromisoformat(scenario.as_of)

    def entries(key: str) -> list[dict[str, Any]]:
        return prefetch[key]["entry"]  # type: ignore[no-any-return]

    existing = sum(len(entries(k)) for k in _KEYS) + 1
    extra = max(0, size - existing)
    # Roughly 77 % labs, 12 % conditions, 8 % procedures, 3 % regimen drugs (a long oncology record).
    n_obs, n_cond, n_med = int(extra * 0.77), int(extra * 0.12), int(extra * 0.03)
    n_proc = extra - n_obs - n_cond - _regimen(entries, n_med, patient, as_of)
    for i in range(n_obs):
        code, low, high, unit = _COUNTS[i % 3]
        when = as_of - timedelta(days=7 * (i // 3) + 14)  # weekly CBC going back in time
        entries("observations").append(
            {"resource": _observation(i, code, when, rng.uniform(low, high), unit, patient)}
        )
    for i in range(n_cond):
        code = _PROBLEMS[i % len(_PROBLEMS)]
        onset = as_of - timedelta(days=rng.randint(30, 3650))
        entries("conditions").append({"resource": {
            "resourceType": "Condition", "id": f"bench-c{i}", "subject": {"reference": f"Patient/{patient}"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": rng.choice(["active", "resolved"])}]},
            "code": {"coding": [{"system": ICD, "code": code}]}, "onsetDateTime": onset.isoformat(),
        }})  # fmt: skip
    for i in range(n_proc):
        when = as_of - timedelta(days=rng.randint(20, 3650))
        entries("procedures").append({"resource": {
            "resourceType": "Procedure", "id": f"bench-p{i}", "status": "completed",
            "subject": {"reference": f"Patient/{patient}"}, "performedDateTime": when.isoformat(),
            "code": {"coding": [{"system": CPT, "code": _PROCEDURES[i % len(_PROCEDURES)]}]},
        }})  # fmt: skip
    for key in _KEYS[1:]:
        prefetch[key]["total"] = len(entries(key))
    return copy.deepcopy(request)


def unrelated_order_request(size: int, seed: int = 7) -> dict[str, Any]:
    """`order_sign_request(size)` with its draft order for something else (a complete blood
    count, CPT 85025): no DLI or HPC boost, so the service answers no cards, with the same
    prefetch to receive and parse."""
    request = order_sign_request(size, seed)
    for entry in request["context"]["draftOrders"]["entry"]:
        entry["resource"]["code"] = {"coding": [{"system": CPT, "code": "85025"}], "text": "CBC"}
    return request


def _regimen(entries: Any, count: int, patient: str, as_of: date) -> int:
    """`count` resources: one order per drug (busulfan, fludarabine) and their administrations,
    daily, going back from 40 days before `as_of`; how many it added (none below three)."""
    drugs = (("1729351", 3.2, "mg/kg"), ("24698", 40, "mg/m2"))
    if count < len(drugs) + 1:
        return 0
    for drug, _, _ in drugs:
        entries("medication-requests").append({"resource": {
            "resourceType": "MedicationRequest", "id": f"bench-rx{drug}", "status": "completed",
            "intent": "order", "subject": {"reference": f"Patient/{patient}"},
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": drug}]},
            "authoredOn": (as_of - timedelta(days=45)).isoformat(),
        }})  # fmt: skip
    for i in range(count - len(drugs)):
        drug, dose, unit = drugs[i % 2]
        when = as_of - timedelta(days=40 + i // 2)
        entries("medication-administrations").append({"resource": {
            "resourceType": "MedicationAdministration", "id": f"bench-m{i}", "status": "completed",
            "subject": {"reference": f"Patient/{patient}"},
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": drug}]},
            "effectiveDateTime": f"{when.isoformat()}T09:00:00-05:00",
            "dosage": {"dose": {"value": dose, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}},
        }})  # fmt: skip
    return count


def resource_count(request: dict[str, Any]) -> int:
    prefetch = request["prefetch"]
    count = 1 if prefetch.get("patient") else 0
    return count + sum(len((prefetch[k] or {}).get("entry", [])) for k in _KEYS)
