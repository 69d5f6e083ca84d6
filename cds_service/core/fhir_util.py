"""Small helpers over fhir.resources R4B models: codings, dates, statuses, references."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from cds_service.core import codes

Coding = tuple[str, str]  # (system, code)


def codings(concept: Any) -> Iterator[Coding]:
    """(system, code) pairs of a CodeableConcept (or None)."""
    if concept is None:
        return
    for coding in concept.coding or ():
        if coding.system and coding.code:
            yield coding.system, coding.code


def first_code(concept: Any, system: str) -> str | None:
    return next((code for sys, code in codings(concept) if sys == system), None)


_SYSTEM_NAMES = {
    codes.ICD10CM: "ICD-10-CM",
    codes.ICD10PCS: "ICD-10-PCS",
    codes.CPT: "CPT",
    codes.SNOMED: "SNOMED CT",
    codes.LOINC: "LOINC",
}


def system_name(system: str) -> str:
    return _SYSTEM_NAMES.get(system, system.rsplit("/", 1)[-1])


def display(concept: Any) -> str:
    """A short human label for a CodeableConcept: text, else the first display, else code."""
    if concept is None:
        return ""
    if concept.text:
        return str(concept.text)
    for coding in concept.coding or ():
        if coding.display:
            return str(coding.display)
    return next((f"{system_name(system)} {code}" for system, code in codings(concept)), "")


def to_date(value: Any) -> date | None:
    """FHIR date / dateTime / partial date ('2025', '2025-03') to a date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    try:
        if len(text) >= 10:
            return date.fromisoformat(text[:10])  # the common case, parsed in C
        parts = [int(part) for part in text.split("-")]
        return date(parts[0], parts[1] if len(parts) > 1 else 1, 1)
    except (ValueError, IndexError):
        return None


def ref(resource: Any) -> str:
    return f"{resource.get_resource_type()}/{resource.id}"


def condition_date(condition: Any) -> date | None:
    onset = condition.onsetDateTime or (condition.onsetPeriod and condition.onsetPeriod.start)
    return to_date(onset) or to_date(condition.recordedDate)


_INACTIVE = frozenset({"inactive", "remission", "resolved"})
_REJECTED = frozenset({"refuted", "entered-in-error"})


def condition_valid(condition: Any) -> bool:
    """Not refuted / entered in error."""
    return not any(code in _REJECTED for _, code in codings(condition.verificationStatus))


def condition_active(condition: Any) -> bool:
    """Active, recurrence or relapse; a missing clinicalStatus counts as active unless abated."""
    if not condition_valid(condition):
        return False
    status = first_code(condition.clinicalStatus, codes.CONDITION_CLINICAL)
    if status is None:
        return condition.abatementDateTime is None and condition.abatementPeriod is None
    return status not in _INACTIVE


def clinical_status(condition: Any) -> str | None:
    return first_code(condition.clinicalStatus, codes.CONDITION_CLINICAL)


def procedure_done(procedure: Any) -> bool:
    return procedure.status in ("completed", "in-progress")


def procedure_date(procedure: Any) -> date | None:
    performed = procedure.performedDateTime or (
        procedure.performedPeriod and procedure.performedPeriod.start
    )
    return to_date(performed)


def observation_time(observation: Any) -> Any:
    """The clinically effective time as given (effective[x], else issued): may be partial."""
    return (
        observation.effectiveDateTime
        or observation.effectiveInstant
        or (observation.effectivePeriod and observation.effectivePeriod.start)
        or observation.issued
    )


def observation_date(observation: Any) -> date | None:
    return to_date(observation_time(observation))


def fmt(when: date | None) -> str:
    return when.isoformat() if when else "undated"
