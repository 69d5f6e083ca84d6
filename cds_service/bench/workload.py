"""Realistic order-sign requests of a chosen size: a scenario patient plus years of history.

The history is what a long transplant course leaves in an EHR: weekly blood counts, periodic
chimerism, vital signs and chemistry labs (which the prefetch template would not ask for, so
they are not added to `observations`), recurring problem-list entries and procedures.
"""

from __future__ import annotations

import copy
import random
from datetime import date, timedelta
from typing import Any

from cds_service.core import Service
from cds_service.scenarios import build_request, find_scenario

LOINC = "http://loinc.org"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
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

    existing = (
        sum(len(entries(k)) for k in ("coverage", "conditions", "procedures", "observations")) + 1
    )
    extra = max(0, size - existing)
    # Roughly 80 % labs, 12 % conditions, 8 % procedures, as in a long oncology record.
    n_obs, n_cond = int(extra * 0.8), int(extra * 0.12)
    n_proc = extra - n_obs - n_cond
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
    for key in ("conditions", "procedures", "observations"):
        prefetch[key]["total"] = len(entries(key))
    return copy.deepcopy(request)


def resource_count(request: dict[str, Any]) -> int:
    prefetch = request["prefetch"]
    count = 1 if prefetch.get("patient") else 0
    return count + sum(
        len((prefetch[k] or {}).get("entry", []))
        for k in ("coverage", "conditions", "procedures", "observations")
    )
