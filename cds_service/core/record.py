"""Prefetch (or fetched) FHIR JSON in, PatientRecord out. Tolerant: one bad resource never
fails the call; it is recorded as a ParseProblem and the facts that need it become unknown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.coverage import Coverage
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from cds_service.core.fhir_util import (
    INVALID_FHIR,
    about_another_patient,
    mistyped_primitive,
    to_date,
    well_typed_answers,
)
from cds_service.core.model import ParseProblem, PatientRecord
from cds_service.core.structure import (
    StructureLimits,
    TooLarge,
    check_codings,
    check_entries,
    check_resource,
)

DEFAULT_LIMITS = StructureLimits()
# Skipped resources per step of prefetch_value_steps: skipping one costs about a microsecond, so
# a step (a clock read and a generator switch in the caller) after each would add a fifth.
_SKIPS_PER_STEP = 64

# Only the resource types the evaluation reads are validated; anything else is skipped unread.
MODELS: dict[str, Any] = {
    "Condition": Condition,
    "Procedure": Procedure,
    "Observation": Observation,
    "Coverage": Coverage,
    "Organization": Organization,
    "MedicationAdministration": MedicationAdministration,
    "MedicationRequest": MedicationRequest,
    "QuestionnaireResponse": QuestionnaireResponse,
}
# Kept as JSON and validated only when a fact reads them (`validated`): the regimen decides only
# when no conditioning intensity is recorded, so most calls never read it.
_LAZY = frozenset({"MedicationAdministration", "MedicationRequest"})
_LISTS = {
    "Condition": "conditions",
    "Procedure": "procedures",
    "Observation": "observations",
    "Coverage": "coverages",
    "MedicationAdministration": "medication_administrations",
    "MedicationRequest": "medication_requests",
    "QuestionnaireResponse": "questionnaire_responses",
}


def is_operation_outcome(value: Any) -> bool:
    """An OperationOutcome, or a Bundle that carries one: the source failed (CDS Hooks §prefetch)."""
    if not isinstance(value, dict):
        return False
    resource_type = value.get("resourceType")
    if resource_type == "OperationOutcome":
        return True
    entries = value.get("entry") if resource_type == "Bundle" else None
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            return True
    return False


def sniff_codings(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(system, code) pairs of `code.coding` read straight from the JSON, without validation."""
    return concept_codings(raw.get("code") or raw.get("medicationCodeableConcept"))


def concept_codings(concept: Any) -> tuple[tuple[str, str], ...]:
    """(system, code) pairs of a CodeableConcept's JSON (medications: the drug's). A plain
    loop: it runs for every prefetched resource (hundreds per call)."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list):
        return ()
    if len(codings) == 1 and type(only := codings[0]) is dict:  # most resources: one coding
        system, value = only.get("system"), only.get("code")
        return ((str(system), str(value)),) if system and value else ()
    found = []
    for coding in codings:
        if isinstance(coding, dict):
            system, value = coding.get("system"), coding.get("code")
            if system and value:
                found.append((str(system), str(value)))
    return tuple(found)


def _describe(error: ValidationError) -> str:
    """Where validation failed, without the offending values (they may hold PHI)."""
    places = sorted({".".join(str(p) for p in e["loc"]) or "(root)" for e in error.errors()})
    return f"invalid FHIR R4 at {', '.join(places[:5])}"


# Whether a resource can matter: (resourceType, sniffed codings, sniffed observation date).
Keep = Callable[[str, tuple[tuple[str, str], ...], date | None], bool]


def _validate(record: PatientRecord, raw: dict[str, Any], model: Any) -> Any | None:
    """The validated model, or None after recording why it is not valid FHIR R4. A worksheet
    answer of the wrong JSON type is left out of its QuestionnaireResponse (and named); any
    other boolean / number of the wrong JSON type makes the resource invalid, as fhir.resources
    would coerce it."""
    if model is QuestionnaireResponse and "item" in raw:
        mistyped: list[str] = []
        raw = {**raw, "item": well_typed_answers(raw["item"], mistyped)}
        reference = f"QuestionnaireResponse/{raw.get('id') or '(no id)'}"
        record.mistyped_answers += [(reference, link) for link in mistyped]
    wrong_type = mistyped_primitive(raw)
    if wrong_type is not None:
        _unreadable(record, raw, f"invalid FHIR R4 at {wrong_type} (JSON type)")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        _unreadable(record, raw, _describe(error))
    except INVALID_FHIR as error:
        _unreadable(record, raw, f"invalid FHIR R4 ({type(error).__name__})")
    return None


def _unreadable(record: PatientRecord, raw: dict[str, Any], why: str) -> None:
    rid = raw.get("id") if isinstance(raw.get("id"), str) else None
    record.problems.append(ParseProblem(str(raw.get("resourceType")), rid, why, sniff_codings(raw)))


@dataclass(slots=True)
class LazyObservation:
    """An Observation validated only when a fact reads it: a long record carries hundreds of
    blood counts, and only the latest few decide anything (facts/cytopenia.py). Codes, date and
    status are read from the JSON to decide which ones to validate."""

    raw: dict[str, Any]
    codings: tuple[tuple[str, str], ...]
    when: date | None
    status: str | None
    _model: Any = None
    _checked: bool = False

    @property
    def read(self) -> Any | None:
        """The validated Observation if a fact has read it (and it was valid), else None."""
        return self._model if self._checked else None

    def model(self, record: PatientRecord) -> Any | None:
        """The validated Observation, or None (and a ParseProblem on `record`) if invalid."""
        if not self._checked:
            self._model, self._checked = _validate(record, self.raw, Observation), True
        return self._model


def observation_date(raw: dict[str, Any]) -> date | None:
    """An Observation's effective date straight from the JSON."""
    when = raw.get("effectiveDateTime")
    if not when:
        period = raw.get("effectivePeriod")
        when = (
            raw.get("effectiveInstant")
            or (period.get("start") if isinstance(period, dict) else None)
            or raw.get("issued")
        )
    if not isinstance(when, str):
        return None
    if len(when) >= 10:  # the common case, parsed in C
        try:
            return date.fromisoformat(when[:10])
        except ValueError:
            return None
    return to_date(when)


def add_resource(
    record: PatientRecord,
    raw: Any,
    expected_type: str | None = None,
    keep: Keep | None = None,
    limits: StructureLimits = DEFAULT_LIMITS,
) -> bool:
    """Add one resource: skipped if no fact reads it, else held to `limits` (TooLarge, its
    path relative to the resource) and validated. Whether it was read (not skipped)."""
    if not isinstance(raw, dict):
        record.problems.append(ParseProblem(expected_type or "Resource", None, "not a JSON object"))
        if expected_type:
            record.unavailable.add(expected_type)
        return False
    resource_type = raw.get("resourceType")
    model = MODELS.get(resource_type) if isinstance(resource_type, str) else None
    if model is None:
        return False
    if about_another_patient(raw, record.patient_id):
        record.other_patient.append(f"{resource_type}/{raw.get('id') or '(no id)'}")
        return False
    code = raw.get("code")
    check_codings(code.get("coding") if isinstance(code, dict) else None, limits, ".code.coding")
    codings = concept_codings(code or raw.get("medicationCodeableConcept"))  # read once
    when = observation_date(raw) if resource_type == "Observation" else None
    if keep is not None and not keep(str(resource_type), codings, when):
        return False
    check_resource(raw, limits)
    if resource_type in _LAZY:
        getattr(record, _LISTS[str(resource_type)]).append(raw)
        return True
    if resource_type == "Observation" and codings:
        status = raw.get("status")
        status = status if isinstance(status, str) else None
        record.observations.append(LazyObservation(raw, codings, when, status))
        return True
    resource = _validate(record, raw, model)
    if resource is None:
        return True
    if resource_type == "Organization":
        record.organizations[str(resource.id)] = resource
    elif resource_type == "Observation":  # no code to sniff: validated now, read as it is
        record.observations.append(LazyObservation(raw, (), when, resource.status, resource, True))
    else:
        getattr(record, _LISTS[str(resource_type)]).append(resource)
    return True


def validated(record: PatientRecord, raws: list[Any]) -> list[Any]:
    """The valid models of resources kept as JSON (see `_LAZY`); each invalid one is recorded as
    a ParseProblem on `record` and left out."""
    models = []
    for raw in raws:
        model = _validate(record, raw, MODELS[str(raw.get("resourceType"))])
        if model is not None:
            models.append(model)
    return models


def add_prefetch_value(
    record: PatientRecord,
    value: Any,
    expected_type: str,
    keep: Keep | None = None,
    limits: StructureLimits = DEFAULT_LIMITS,
    where: str = "prefetch",
) -> None:
    """Add one prefetch value (a Bundle, a single resource, or null = no data) found at JSON
    path `where`. TooLarge (core/structure.py) when it breaks a limit; what was added before
    stays in the record."""
    for _ in prefetch_value_steps(record, value, expected_type, keep, limits, where):
        pass


def prefetch_value_steps(
    record: PatientRecord,
    value: Any,
    expected_type: str,
    keep: Keep | None = None,
    limits: StructureLimits = DEFAULT_LIMITS,
    where: str = "prefetch",
) -> Iterator[None]:
    """`add_prefetch_value` a step at a time: yields after each resource read and after every
    `_SKIPS_PER_STEP` skipped ones, so that a caller on an event loop can let other calls run
    between them (validating a large record costs many ms)."""
    if value is None:
        return
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        entries = value.get("entry") or []
        if not isinstance(entries, list):
            record.problems.append(ParseProblem(expected_type, None, "Bundle.entry is not a list"))
            record.unavailable.add(expected_type)
            return
        check_entries(entries, record.resources_read, limits, where)
        record.resources_read += len(entries)
        skipped = 0
        for i, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            try:
                read = add_resource(record, resource, expected_type, keep, limits)
            except TooLarge as error:
                raise error.within(f"{where}.entry[{i}].resource") from None
            skipped = 0 if read else skipped + 1
            if read or skipped == _SKIPS_PER_STEP:
                skipped = 0
                yield
        return
    check_entries([value], record.resources_read, limits, where)
    record.resources_read += 1
    try:
        add_resource(record, value, expected_type, keep, limits)
    except TooLarge as error:
        raise error.within(where) from None


def supporting_responses(
    order_resource: dict[str, Any], mistyped: list[tuple[str, str]]
) -> list[Any]:
    """QuestionnaireResponses contained in a draft order and named in its supportingInfo (a
    worksheet sent along with the order), validated; an invalid one is passed over, and an
    answer of the wrong JSON type is left out and named in `mistyped`."""
    contained = order_resource.get("contained")
    by_id = {
        f"#{r.get('id')}": r
        for r in (contained if isinstance(contained, list) else ())
        if isinstance(r, dict) and r.get("resourceType") == "QuestionnaireResponse"
    }
    scratch, found = PatientRecord(), []
    supporting = order_resource.get("supportingInfo")
    for ref in supporting if isinstance(supporting, list) else ():
        raw = by_id.get(str(ref.get("reference"))) if isinstance(ref, dict) else None
        model = _validate(scratch, raw, QuestionnaireResponse) if raw is not None else None
        if model is not None:
            found.append(model)
    mistyped += scratch.mistyped_answers
    return found
