"""Prefetch (or fetched) FHIR JSON in, PatientRecord out. Tolerant: one bad resource never
fails the call; it is recorded as a ParseProblem and the facts that need it become unknown."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.coverage import Coverage
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.procedure import Procedure
from pydantic import ValidationError

from cds_service.core.model import ParseProblem, PatientRecord

# Only the resource types the evaluation reads are validated; anything else is skipped unread.
MODELS: dict[str, Any] = {
    "Condition": Condition,
    "Procedure": Procedure,
    "Observation": Observation,
    "Coverage": Coverage,
    "Organization": Organization,
}
_LISTS = {
    "Condition": "conditions",
    "Procedure": "procedures",
    "Observation": "observations",
    "Coverage": "coverages",
}


def is_operation_outcome(value: Any) -> bool:
    """An OperationOutcome, or a Bundle that carries one: the source failed (CDS Hooks §prefetch)."""
    if not isinstance(value, dict):
        return False
    if value.get("resourceType") == "OperationOutcome":
        return True
    entries = value.get("entry") if value.get("resourceType") == "Bundle" else None
    return isinstance(entries, list) and any(
        isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == "OperationOutcome"
        for e in entries
    )


def _sniff_codings(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    code = raw.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        return ()
    return tuple(
        (str(c.get("system")), str(c.get("code")))
        for c in codings
        if isinstance(c, dict) and c.get("system") and c.get("code")
    )


def _describe(error: ValidationError) -> str:
    """Where validation failed, without the offending values (they may hold PHI)."""
    places = sorted({".".join(str(p) for p in e["loc"]) or "(root)" for e in error.errors()})
    return f"invalid FHIR R4 at {', '.join(places[:5])}"


def add_resource(record: PatientRecord, raw: Any, expected_type: str | None = None) -> None:
    if not isinstance(raw, dict):
        record.problems.append(ParseProblem(expected_type or "Resource", None, "not a JSON object"))
        if expected_type:
            record.unavailable.add(expected_type)
        return
    resource_type = raw.get("resourceType")
    model = MODELS.get(resource_type) if isinstance(resource_type, str) else None
    if model is None:
        return
    try:
        resource = model.model_validate(raw)
    except (ValidationError, TypeError, ValueError, AttributeError) as error:
        # fhir.resources' own validators raise TypeError / AttributeError on some malformed input
        rid = raw.get("id") if isinstance(raw.get("id"), str) else None
        described = (
            _describe(error)
            if isinstance(error, ValidationError)
            else f"invalid FHIR R4 ({type(error).__name__})"
        )
        record.problems.append(
            ParseProblem(str(resource_type), rid, described, _sniff_codings(raw))
        )
        return
    if resource_type == "Organization":
        record.organizations[str(resource.id)] = resource
    else:
        getattr(record, _LISTS[str(resource_type)]).append(resource)


def add_prefetch_value(record: PatientRecord, value: Any, expected_type: str) -> None:
    """Add one prefetch value (a Bundle, a single resource, or null = no data)."""
    if value is None:
        return
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        entries = value.get("entry") or []
        if not isinstance(entries, list):
            record.problems.append(ParseProblem(expected_type, None, "Bundle.entry is not a list"))
            record.unavailable.add(expected_type)
            return
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            add_resource(record, resource, expected_type)
        return
    add_resource(record, value, expected_type)
