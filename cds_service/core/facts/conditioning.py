"""Conditioning intensity inferred from the regimen given before the index transplant, for when no
intensity is recorded (a recorded one always wins: core/facts/transplant.py).

Read: `MedicationAdministration`s (status completed) of the regimen drugs (RxNorm, codes.py, from
the CIBMTR Reporting IG value sets) dated within `conditioning.max_days_before_transplant` days
before the index transplant. The course dose of each drug is the sum of its administrations, in
mg/kg (busulfan) or mg/m² (melphalan); a dose in mg is divided by the latest body weight
(LOINC 29463-7, kg) for busulfan; melphalan in mg needs a body surface area, which is not read.

Only myeloablative (MAC) is ever inferred: when a course reaches the total dose of a published
myeloablative regimen (clinical_thresholds.yaml, `conditioning`, with its source); one drug at a
myeloablative dose makes the regimen myeloablative whatever else it holds. Reduced intensity and
non-myeloablative are never inferred: the dose limits of Bacigalupo et al. 2009 could not be
verified (terminology.md §6.2 marks them UNVERIFIED), and the CIBMTR workshop's RIC bounds
(Giralt et al. 2009) need the whole regimen, TBI included, which is not read; a lower course is
not documented. Oral busulfan is not converted to an IV equivalent (no verified factor); a dose
without a usable unit, weight or route leaves the inference unknown, never a guess.
MedicationRequests only say that the regimen was ordered: they are named, never totalled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from cds_service.core import codes
from cds_service.core.fhir_util import codings, fmt, ref, to_date
from cds_service.core.model import Evidence, Fact

if TYPE_CHECKING:
    from cds_service.core.facts.context import Context
    from cds_service.core.facts.transplant import Transplant


def regimen_drug(system: str, code: str) -> str | None:
    if system != codes.RXNORM:
        return None
    return next((drug for drug, rx in codes.REGIMEN_RXNORM.items() if code in rx), None)


def _is_regimen(system: str, code: str) -> bool:
    return regimen_drug(system, code) is not None


def _is_weight(system: str, code: str) -> bool:
    return system == codes.LOINC and code == codes.BODY_WEIGHT_LOINC


@dataclass
class Course:
    """One drug's administrations in the window: the total per kg / m², or why there is none."""

    drug: str
    given: list[Any] = field(default_factory=list)
    total: float = 0.0
    unit: str = ""
    problem: str = ""


_PER_UNIT = {"busulfan": "mg/kg", "melphalan": "mg/m2"}


def _dose(course: Course, administration: Any, codes_given: set[str], weight: float | None) -> None:
    """Add one administration's dose to the course, or say why it cannot be added."""
    dosage = administration.dosage
    dose = dosage.dose if dosage is not None else None
    unit = str(dose.code or dose.unit or "") if dose is not None else ""
    wanted = _PER_UNIT[course.drug]
    if dose is None or dose.value is None:
        course.problem = course.problem or "a dose without an amount"
        return
    value = float(dose.value)
    if unit == "mg" and wanted == "mg/kg" and weight:
        value, unit = value / weight, "mg/kg"
    if unit != wanted:
        needs = "a body weight" if wanted == "mg/kg" else "a body surface area"
        course.problem = (
            course.problem or f"a dose in {unit or 'no unit'} ({wanted} or mg with {needs} needed)"
        )
        return
    if course.drug == "busulfan":
        routes = {c for s, c in codings(dosage.route) if s == codes.SNOMED}
        iv = codes.ROUTE_IV_SNOMED in routes or bool(codes_given & codes.BUSULFAN_IV_RXNORM)
        if not iv:
            course.problem = course.problem or (
                "oral busulfan (no verified IV equivalence)"
                if codes.ROUTE_ORAL_SNOMED in routes
                else "busulfan without a recorded route"
            )
            return
    course.total += value
    course.unit = unit


def _when(administration: Any) -> date | None:
    period = administration.effectivePeriod
    return to_date(administration.effectiveDateTime or (period.start if period else None))


def _weight(ctx: Context) -> float | None:
    for observation, _, _ in ctx.observations(_is_weight, newest_first=True):
        quantity = observation.valueQuantity
        if (
            quantity is not None
            and quantity.value is not None
            and (quantity.code or quantity.unit) == "kg"
        ):
            return float(quantity.value)
    return None


def _courses(ctx: Context, index: Transplant) -> dict[str, Course]:
    limit = ctx.thresholds.conditioning_max_days_before
    courses: dict[str, Course] = {}
    weight: float | None = None
    for administration in ctx.medication_administrations:
        when = _when(administration)
        if administration.status != "completed" or when is None or index.when is None:
            continue
        if not 0 <= (index.when - when).days <= limit:
            continue
        given = {
            c for s, c in codings(administration.medicationCodeableConcept) if s == codes.RXNORM
        }
        drug = next((d for c in given if (d := regimen_drug(codes.RXNORM, c))), None)
        if drug is None:
            continue
        course = courses.setdefault(drug, Course(drug))
        course.given.append(administration)
        if drug in _PER_UNIT:
            if weight is None and drug == "busulfan":
                weight = _weight(ctx)
            _dose(course, administration, given, weight)
    return courses


def _limit(ctx: Context, drug: str) -> float:
    return {
        "busulfan": ctx.thresholds.busulfan_iv_mac_mg_per_kg,
        "melphalan": ctx.thresholds.melphalan_mac_mg_per_m2,
    }[drug]


def _summary(course: Course) -> str:
    amount = f" {course.total:g} {course.unit} total" if course.unit and not course.problem else ""
    route = " IV" if course.drug == "busulfan" and amount else ""
    return f"{course.drug}{route}{amount} ({len(course.given)} administrations)"


def inferred_intensity(ctx: Context, index: Transplant) -> Fact:
    """MAC when a course reaches a published myeloablative dose; else not documented, saying
    what the regimen on record is and why it does not settle the intensity."""
    courses = _courses(ctx, index)
    where = f"the {fmt(index.when)} transplant"
    if not courses:
        ordered = _ordered(ctx, index)
        why = f"; the regimen is on record only as orders ({ordered})" if ordered else ""
        return Fact(
            None, note=f"not documented: conditioning intensity not recorded for {where}{why}"
        )
    for drug, course in courses.items():
        if drug in _PER_UNIT and not course.problem and course.total >= _limit(ctx, drug):
            evidence = tuple(
                Evidence(
                    ref(c.given[0]),
                    f"Conditioning inferred from the regimen: {_summary(c)}",
                    _when(c.given[0]),
                )
                for c in courses.values()
            )
            why = f"{_summary(course)}: a myeloablative dose"
            return Fact(
                "MAC", evidence, note=f"documented present: inferred from the regimen ({why})"
            )
    problems = [f"{c.drug}: {c.problem}" for c in courses.values() if c.problem]
    regimen = ", ".join(_summary(c) for c in courses.values())
    why = (
        f"the doses cannot be totalled ({'; '.join(problems)})"
        if problems
        else "no course reaches a myeloablative dose, and reduced intensity is not inferred"
    )
    note = f"conditioning intensity not recorded for {where}; regimen on record: {regimen}; {why}"
    return Fact(None, note=f"not documented: {note}")


def _ordered(ctx: Context, index: Transplant) -> str:
    drugs = set()
    for request in ctx.medication_requests:
        for system, code in codings(request.medicationCodeableConcept):
            drug = regimen_drug(system, code)
            when = to_date(request.authoredOn)
            if (
                drug
                and when
                and index.when
                and 0 <= (index.when - when).days <= ctx.thresholds.conditioning_max_days_before
            ):
                drugs.add(drug)
    return ", ".join(sorted(drugs))


OBSERVATION_LOINC = frozenset({codes.BODY_WEIGHT_LOINC})
READS = {
    "MedicationAdministration": _is_regimen,
    "MedicationRequest": _is_regimen,
    "Observation": _is_weight,
}
