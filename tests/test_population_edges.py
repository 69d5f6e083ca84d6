"""The population expressions on the record edge cases the evidence rules name, against Facts.

tests/test_sdc_population.py compares with the service on the scenarios as written; here each
record is varied where the rules draw a line (a refuted or entered-in-error Condition, a
Procedure not done, evidence dated after the order, a resolved GVHD, same-day results that
disagree, a recipient-% or fraction chimerism result, a newer current smoking status, a
shuffled record). fhirpath.js (tests/sdc/variables.mjs) evaluates every root variable of the
worksheet as an SDC engine would after its queries; for every fact the expression either gives
no answer or the value the service's Facts give.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from cds_service.core.facts import Facts
from cds_service.core.model import Service
from cds_service.core.orders import recognise
from cds_service.core.population import (
    EXPRESSED_FACTS,
    VARIABLE,
    root_extensions,
    variable_name,
)
from cds_service.policy_store import load
from cds_service.scenarios import draft_orders, load_scenarios, resources
from tests.node import run_node
from tests.test_facts import record_of

BASE = next(s for s in load_scenarios() if s.id == "acute-gvhd-grade-3")
Change = Callable[[list[dict[str, Any]]], None]


def _by_id(found: list[dict[str, Any]], resource_id: str) -> dict[str, Any]:
    return next(r for r in found if r.get("id") == resource_id)


def _set(resource_id: str, **values: Any) -> Change:
    return lambda found: _by_id(found, resource_id).update(copy.deepcopy(values))


def _add(resource: dict[str, Any]) -> Change:
    return lambda found: found.append(copy.deepcopy(resource))


def _chimerism(
    resource_id: str, day: str, value: float, code: str = "102113-8", unit: str = "%"
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{BASE.id}"},
        "effectiveDateTime": day,
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def _status(code: str) -> dict[str, Any]:
    system = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    return {"coding": [{"system": system, "code": code}]}


def _clinical(code: str) -> dict[str, Any]:
    return {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": code}
        ]
    }


SMOKER = {
    "resourceType": "Observation",
    "id": "edge-smoker",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
    "subject": {"reference": f"Patient/{BASE.id}"},
    "effectiveDateTime": "2026-02-01",
    "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "77176002"}]},
}
VARIANTS: dict[str, list[Change]] = {
    "as written": [],
    "GVHD refuted": [_set("ag3-gvhd", verificationStatus=_status("refuted"))],
    "GVHD resolved": [_set("ag3-gvhd", clinicalStatus=_clinical("resolved"))],
    "relapse entered in error": [_set("ag3-rel", verificationStatus=_status("entered-in-error"))],
    "relapse after the order": [
        _set("ag3-rel", onsetDateTime="2026-03-01", recordedDate="2026-03-01")
    ],
    "relapse in remission now": [
        _set("ag3-rel", clinicalStatus=_clinical("remission"), onsetDateTime="2025-05-01")
    ],
    "transplant not done": [_set("ag3-tx", status="not-done")],
    "transplant entered in error": [_set("ag3-tx", status="entered-in-error")],
    "chimerism same-day conflict": [_add(_chimerism("edge-chim", "2026-01-22", 60))],
    "chimerism newer recipient %": [_add(_chimerism("edge-chim", "2026-02-10", 5, "104480-9"))],
    "chimerism newer fraction": [_add(_chimerism("edge-chim", "2026-02-10", 0.9, unit="1"))],
    "chimerism after the order": [_add(_chimerism("edge-chim", "2026-03-10", 40))],
    "current smoker newer": [_add(SMOKER)],
}


# What each variation decides (the loop above has checked it equals the Facts): None = open.
DECIDED: dict[str, dict[str, Any]] = {
    "as written": {
        "disease_status": "relapsed",
        "donor_chimerism_pct": 85,
        "acute_gvhd_grade": None,
    },
    "GVHD refuted": {"acute_gvhd_active": False, "acute_gvhd_grade": 0},
    "GVHD resolved": {"acute_gvhd_active": False, "acute_gvhd_grade": 0},
    "relapse entered in error": {"disease_status": None},
    "relapse after the order": {"disease_status": None},
    "transplant not done": {"hsct_type": "allogeneic", "t_cell_depleted_graft": None},
    "chimerism same-day conflict": {"donor_chimerism_pct": None},
    "chimerism newer recipient %": {"donor_chimerism_pct": 95},
    "chimerism newer fraction": {"donor_chimerism_pct": None},  # 0.9 needs unit conversion
    "chimerism after the order": {"donor_chimerism_pct": 85},
    "current smoker newer": {"current_substance_use": True},
    "shuffled": {"donor_chimerism_pct": None, "disease_status": "relapsed"},
}


def _variables(service: Service) -> list[dict[str, str]]:
    return [
        e["valueExpression"]
        for e in root_extensions(service, EXPRESSED_FACTS)
        if e["url"] == VARIABLE
    ]


def _context(found: list[dict[str, Any]], variables: list[dict[str, str]]) -> dict[str, Any]:
    """What the engine's x-fhir-query reads would return from a server holding `found`."""
    context: dict[str, Any] = {"patient": next(r for r in found if r["resourceType"] == "Patient")}
    for variable in variables:
        if variable["language"] != "application/x-fhir-query":
            continue
        kind, _, query = variable["expression"].partition("?")
        wanted = {
            t.split("|")[-1] for t in ",".join(parse_qs(query).get("code", [])).split(",") if t
        }
        hits = [
            r
            for r in found
            if r["resourceType"] == kind
            and (
                not wanted or {c.get("code") for c in r.get("code", {}).get("coding", [])} & wanted
            )
        ]
        if kind == "ServiceRequest":
            hits = [r for r in hits if r.get("status") == "draft"]
        context[variable["name"]] = {
            "resourceType": "Bundle",
            "entry": [{"resource": r} for r in hits],
        }
    return context


def _evaluate(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = run_node("variables.mjs", cases, ("fhirpath",))
    return results


def _bundles() -> dict[str, list[dict[str, Any]]]:
    found = {}
    for name, changes in VARIANTS.items():
        record = resources(BASE.bundle())
        for change in changes:
            change(record)
        found[name] = record
    shuffled = copy.deepcopy(found["chimerism same-day conflict"])
    random.Random(20).shuffle(shuffled)
    found["shuffled"] = shuffled
    return found


def test_every_expression_agrees_with_the_facts_or_stays_open() -> None:
    service = Service.HPC_BOOST
    variables = _variables(service)
    bundles = _bundles()
    cases = [
        {
            "context": _context(b, variables),
            "variables": [v for v in variables if v["language"] == "text/fhirpath"],
        }
        for b in bundles.values()
    ]
    answered: dict[str, int] = {}
    results = dict(zip(bundles, _evaluate(cases), strict=True))
    for name, found in bundles.items():
        result = results[name]
        assert "error" not in result, (name, result)
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in found],
        }
        order = recognise(draft_orders(bundle, (service,))[0])
        assert order is not None and order.authored_on is not None
        facts = Facts(record_of(bundle), order, order.authored_on, load().thresholds)
        for fact in EXPRESSED_FACTS:
            value = result[variable_name(fact)]
            assert len(value) <= 1, (name, fact, value)
            if value:
                ours = facts[fact].value
                theirs = tuple(value) if fact == "indication_icd10cm" else value[0]
                assert theirs == ours, (name, fact, theirs, ours)
                answered[name] = answered.get(name, 0) + 1
    for name, expected in DECIDED.items():
        for fact, value in expected.items():
            assert results[name][variable_name(fact)] == ([] if value is None else [value]), (
                name,
                fact,
            )
    assert min(answered.values()) >= 12, answered  # the rest of the record is still answered


def test_a_record_read_in_pages_leaves_every_fact_open() -> None:
    """The engine reads a search's first page; a later one could hold what decides."""
    variables = _variables(Service.HPC_BOOST)
    context = _context(resources(BASE.bundle()), variables)
    paged = copy.deepcopy(context)
    paged["conditionBundle"]["link"] = [{"relation": "next", "url": "Condition?_offset=100"}]
    expressions = [v for v in variables if v["language"] == "text/fhirpath"]
    whole, partial = _evaluate([{"context": c, "variables": expressions} for c in (context, paged)])
    assert sum(bool(whole[variable_name(f)]) for f in EXPRESSED_FACTS) >= 14
    answered = {f: partial[variable_name(f)] for f in EXPRESSED_FACTS if partial[variable_name(f)]}
    assert answered == {}
