"""Small helpers over fhir.resources R4B models: codings, dates, statuses, references."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import orjson

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


# What fhir.resources raises on malformed input besides ValidationError: TypeError /
# AttributeError from its own validators, KeyError for a resource type R4B does not know (an R5
# `Transport` in `contained`), RecursionError on very deep nesting. Any of them: not valid FHIR.
INVALID_FHIR = (TypeError, ValueError, AttributeError, LookupError, RecursionError)

# The JSON type FHIR's JSON format gives each answer value[x] (fhir.resources, like pydantic's
# lax mode, would read "true", 1, "yes" or "on" as a boolean: a wrong type is not valid FHIR).
_ANSWER_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "valueBoolean": (bool,),
    "valueDecimal": (int, float),
    "valueInteger": (int,),
    "valueDate": (str,),
    "valueDateTime": (str,),
    "valueTime": (str,),
    "valueString": (str,),
    "valueUri": (str,),
    "valueAttachment": (dict,),
    "valueCoding": (dict,),
    "valueQuantity": (dict,),
    "valueReference": (dict,),
}


# Elements holding a Quantity (or a dose): their `value` is a JSON number in FHIR's JSON format.
_QUANTITIES = frozenset(
    {"valueQuantity", "dose", "doseQuantity", "rateQuantity", "low", "high", "numerator", "denominator"}
)  # fmt: skip
_NUMBER_SUFFIXES = ("Integer", "PositiveInt", "UnsignedInt", "Decimal")


def _primitive_ok(key: str, value: Any, parent: str) -> bool:
    """Whether `value` has the JSON type FHIR gives element `key` (under element `parent`);
    elements this does not know are left to fhir.resources."""
    if key.endswith("Boolean"):
        return isinstance(value, bool)
    if key.endswith(_NUMBER_SUFFIXES) or (key == "value" and parent in _QUANTITIES):
        whole = key.endswith(_NUMBER_SUFFIXES[:3])
        kinds = (int,) if whole else (int, float)
        return isinstance(value, kinds) and not isinstance(value, bool)
    return True


# In a resource serialised by orjson (no spaces), where a mistyped primitive could be: a key
# with a boolean or number suffix, or a `value` that is not a JSON number (which starts with a
# digit or a minus). A resource without either has none, and is not walked.
_MAYBE_MISTYPED = re.compile(
    rb'(?:Boolean|%s)":|"value":[^-0-9]' % "|".join(_NUMBER_SUFFIXES).encode()
)


def mistyped_primitive(raw: dict[str, Any]) -> str | None:
    """The path of the first boolean, integer or decimal element whose JSON type is wrong
    (`"true"` for a boolean, `"71"` for a Quantity's value), or None. fhir.resources, like
    pydantic's lax mode, would coerce them: such a resource is not valid FHIR JSON and must not
    decide anything. Iterative, for the few resources that are validated."""
    try:
        if _MAYBE_MISTYPED.search(orjson.dumps(raw)) is None:
            return None  # serialising and searching run in C: most resources are not walked
    except TypeError:
        pass  # not JSON-serialisable: walk it
    return first_mistyped(raw)


def first_mistyped(raw: dict[str, Any]) -> str | None:
    """`mistyped_primitive` by walking every element."""
    stack: list[tuple[str, str, Any]] = [("", "", raw)]
    while stack:
        path, parent, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if not _primitive_ok(key, value, parent):
                    return f"{path}.{key}".lstrip(".")
                if isinstance(value, dict | list):
                    stack.append((f"{path}.{key}", key, value))
        elif isinstance(node, list):
            stack += [(path, parent, item) for item in node if isinstance(item, dict | list)]
    return None


def _typed(answer: Any) -> bool:
    if not isinstance(answer, dict):
        return True  # not ours to judge: fhir.resources refuses it
    for key, value in answer.items():
        wanted = _ANSWER_JSON_TYPES.get(key)
        if wanted is not None and (
            not isinstance(value, wanted) or (bool not in wanted and isinstance(value, bool))
        ):
            return False
    return True


def well_typed_answers(items: Any, mistyped: list[str]) -> Any:
    """QuestionnaireResponse `item`s (JSON) without the answers whose value[x] has the wrong
    JSON type; the linkIds of those go to `mistyped`. The input is not changed (a copy where
    something was dropped)."""
    if not isinstance(items, list):
        return items
    out = []
    for item in items:
        if not isinstance(item, dict):
            out.append(item)
            continue
        kept = dict(item)
        answers = item.get("answer")
        if isinstance(answers, list):
            good = [a for a in answers if _typed(a)]
            if len(good) < len(answers):
                mistyped.append(str(item.get("linkId")))
            kept["answer"] = [
                {**a, "item": well_typed_answers(a["item"], mistyped)}
                if isinstance(a, dict) and "item" in a
                else a
                for a in good
            ]
            if not kept["answer"]:
                del kept["answer"]
        if "item" in item:
            kept["item"] = well_typed_answers(item["item"], mistyped)
        out.append(kept)
    return out


def patient_of(raw: dict[str, Any]) -> str | None:
    """The id of the patient a resource is about, from a relative or absolute `Patient/<id>`
    reference in `subject`, `patient` or (a Coverage) `beneficiary`; None when it names none
    (or names it in a way that does not say who: a contained or urn: reference)."""
    for key in ("subject", "patient", "beneficiary"):
        value = raw.get(key)
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str):
            segments = reference.split("/_history/")[0].rstrip("/").split("/")
            return segments[-1] if len(segments) >= 2 and segments[-2] == "Patient" else None
    return None


def about_another_patient(raw: dict[str, Any], patient_id: str) -> bool:
    """Whether `raw` names a patient other than `patient_id` (a resource naming none is not)."""
    if not patient_id:
        return False
    subject = raw.get("subject")
    if type(subject) is dict and subject.get("reference") == "Patient/" + patient_id:
        return False  # the common case, read without splitting the reference
    other = patient_of(raw)
    return other is not None and other != patient_id
