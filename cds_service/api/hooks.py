"""Parse and validate a CDS Hooks request (CDS Hooks 2.0 §calling-a-cds-service; hook
definitions order-sign / order-select / appointment-book / order-dispatch 1.0). Every problem
becomes a HookError with a message that says what is wrong; nothing here reads patient data
beyond the draft orders and the appointments. appointment-book and order-dispatch name their
orders only by reference: those are resolved later (api/resolve.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cds_service.api.discovery import ServiceDef
from cds_service.api.errors import HookError
from cds_service.api.limits import MAX_JSON_DEPTH, check_fhir_text, check_request_shape
from cds_service.core import CardOptions, Order, recognise

_ID = r"^[A-Za-z0-9\-.]{1,64}$"  # FHIR's id type
_IS_ID = re.compile(_ID).fullmatch
_REFERENCE = r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$"  # a local reference Type/id
_IS_REFERENCE = re.compile(_REFERENCE).fullmatch
REQUEST_TYPES = frozenset(
    {
        "ServiceRequest",
        "MedicationRequest",
        "DeviceRequest",
        "NutritionOrder",
        "VisionPrescription",
        "CommunicationRequest",
    }
)


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")
    access_token: str = Field(min_length=1)
    token_type: str
    expires_in: int
    scope: str
    subject: str

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str) -> str:
        if value != "Bearer":
            raise ValueError("token_type must be 'Bearer'")
        return value


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    hook: str
    hookInstance: UUID
    fhirServer: str | None = Field(None, pattern=r"^https?://\S+$")
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _server_with_token(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return self


class OrderContext(BaseModel):
    model_config = ConfigDict(extra="ignore")  # CRD hook-23: ignore unrecognised context fields
    userId: str = Field(pattern=r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$")
    patientId: str = Field(pattern=_ID)
    encounterId: str | None = Field(None, pattern=_ID)
    draftOrders: dict[str, Any]
    selections: list[str] | None = None


class AppointmentContext(BaseModel):
    """appointment-book 1.0: the proposed Appointments (a Bundle), booked by a clinician, the
    patient or a related person."""

    model_config = ConfigDict(extra="ignore")
    userId: str = Field(
        pattern=r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}$"
    )
    patientId: str = Field(pattern=_ID)
    encounterId: str | None = Field(None, pattern=_ID)
    appointments: dict[str, Any]


class DispatchContext(BaseModel):
    """order-dispatch 1.0: the orders being sent (local references), to whom, and optionally
    the fulfilment Tasks. `order` (one reference) is the hook's 2023 ballot form, which Inferno's
    CRD 2.0.1 tester still sends: it is read as a one-order `dispatchedOrders`."""

    model_config = ConfigDict(extra="ignore")
    patientId: str = Field(pattern=_ID)
    encounterId: str | None = Field(None, pattern=_ID)
    dispatchedOrders: list[str] = Field(min_length=1)
    performer: str = Field(pattern=_REFERENCE)
    fulfillmentTasks: list[dict[str, Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _ballot_order(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dispatchedOrders" not in data and "order" in data:
            return {**data, "dispatchedOrders": [data["order"]]}
        return data

    @field_validator("dispatchedOrders")
    @classmethod
    def _references(cls, value: list[str]) -> list[str]:
        for i, reference in enumerate(value):
            kind = reference.split("/", 1)[0]
            if not _IS_REFERENCE(reference) or not _is_request_type(kind):
                raise ValueError(f"[{i}] must be a request reference such as ServiceRequest/id")
        return value


HookContext = OrderContext | AppointmentContext | DispatchContext


@dataclass(frozen=True)
class ParsedHook:
    request: HookRequest
    context: HookContext
    orders: list[Order]
    options: CardOptions
    # appointment-book / order-dispatch: the ServiceRequests named by reference, to resolve
    references: tuple[str, ...] = ()
    # appointment-book: ServiceRequest reference -> the Appointments booked for it
    appointments: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = ()
    # references not evaluated, and why (unreadable, another patient's): named on the cards
    not_evaluated: tuple[tuple[str, str], ...] = ()


def explain(error: ValidationError, prefix: str = "") -> str:
    """A pydantic error as 'where: what' pairs (the first five), for an OperationOutcome."""
    parts = []
    for e in error.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"{prefix}{where}: {e['msg']}" if where else f"{prefix}{e['msg']}")
    return "; ".join(parts)


def _is_request_type(kind: Any) -> bool:
    return isinstance(kind, str) and kind in REQUEST_TYPES


def _entries(draft_orders: dict[str, Any]) -> list[dict[str, Any]]:
    if draft_orders.get("resourceType") != "Bundle":
        raise HookError(400, "context.draftOrders must be a FHIR Bundle")
    entries = draft_orders.get("entry")
    if not isinstance(entries, list) or not entries:
        raise HookError(400, "context.draftOrders.entry must list the draft orders")
    resources = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not _is_request_type(resource.get("resourceType")):
            raise HookError(
                400, f"context.draftOrders.entry[{i}].resource must be a request resource"
            )
        if not isinstance(resource.get("id"), str) or not resource["id"]:
            raise HookError(400, f"context.draftOrders.entry[{i}].resource needs an id")
        if not _IS_ID(resource["id"]):
            raise HookError(
                400,
                f"context.draftOrders.entry[{i}].resource.id is not a FHIR id "
                "(1 to 64 of A-Z a-z 0-9 - .)",
            )
        resources.append(resource)
    return resources


def _at_least_2_1(version: str) -> bool:
    major, _, minor = version.partition(".")
    return (
        major.isdigit()
        and minor.split(".")[0].isdigit()
        and (int(major), int(minor.split(".")[0])) >= (2, 1)
    )


def _options(extension: dict[str, Any] | None) -> CardOptions:
    """Honour the davinci-crd.configuration options we advertise; ignore anything else
    (CRD dev-14, dev-17), including values of the wrong type (dev-6)."""
    # A CRD 2.0.1 client cannot send requestedVersion (new in 2.2, reference items 12, 124), and
    # 2.0.1 has no `indeterminate` (item 131): without a request for 2.1 or later the answer
    # uses only codes both versions accept (item 163).
    version = (extension or {}).get("davinci-crd.requestedVersion")
    crd_2_2 = isinstance(version, str) and _at_least_2_1(version)
    config = (extension or {}).get("davinci-crd.configuration")
    if not isinstance(config, dict):
        return CardOptions(crd_2_2=crd_2_2)
    guideline, coverage_info = config.get("guideline"), config.get("coverage-info")
    max_cards = config.get("max-cards")
    return CardOptions(
        guideline=guideline if isinstance(guideline, bool) else True,
        coverage_info=coverage_info if isinstance(coverage_info, bool) else True,
        max_cards=max_cards
        if isinstance(max_cards, int) and not isinstance(max_cards, bool) and max_cards > 0
        else 10,
        crd_2_2=crd_2_2,
    )


def _load(body: bytes) -> HookRequest:
    try:
        # orjson rejects NaN / Infinity and numbers that overflow, and caps nesting at 1024;
        # check_request_shape then applies our own depth and size limits.
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if "depth limit" in str(error):
            raise HookError(
                400, f"request JSON nests deeper than {MAX_JSON_DEPTH} levels"
            ) from error
        raise HookError(400, f"request body is not valid JSON: {error}") from error
    check_request_shape(data)
    check_fhir_text(body)
    if not isinstance(data, dict):
        raise HookError(400, "request body must be a JSON object")
    try:
        return HookRequest.model_validate(data)
    except ValidationError as error:
        raise HookError(400, explain(error)) from error


def parse_hook(body: bytes, service: ServiceDef) -> ParsedHook:
    request = _load(body)
    if request.hook != service.hook:
        raise HookError(
            400, f"service {service.id} answers hook {service.hook!r}, not {request.hook!r}"
        )
    if service.hook == "appointment-book":
        return _appointment_book(request)
    if service.hook == "order-dispatch":
        return _order_dispatch(request)
    try:
        context = OrderContext.model_validate(request.context)
    except ValidationError as error:
        raise HookError(400, explain(error, "context.")) from error
    resources = _entries(context.draftOrders)
    if service.hook == "order-select":
        resources = _selected(resources, context.selections)
    orders = []
    for resource in resources:
        if resource["resourceType"] != "ServiceRequest" or (order := recognise(resource)) is None:
            continue
        check_subject(order, context.patientId)
        orders.append(order)
    return ParsedHook(request, context, orders, _options(request.extension))


def _selected(
    resources: list[dict[str, Any]], selections: list[str] | None
) -> list[dict[str, Any]]:
    if not selections:
        raise HookError(400, "context.selections is required for order-select")
    known = {f"{r['resourceType']}/{r['id']}" for r in resources}
    unknown = [s for s in selections if s not in known]
    if unknown:
        raise HookError(400, f"context.selections not found in draftOrders: {', '.join(unknown)}")
    return [r for r in resources if f"{r['resourceType']}/{r['id']}" in selections]


def check_subject(order: Order, patient_id: str) -> None:
    """A draft order in the call that names another patient is a 400: the call is inconsistent."""
    subject = order.resource.get("subject")
    subject = subject.get("reference") if isinstance(subject, dict) else None
    if subject is not None and subject != f"Patient/{patient_id}":
        raise HookError(400, f"{order.reference} is for {subject}, not Patient/{patient_id}")


def _appointment_book(request: HookRequest) -> ParsedHook:
    try:
        context = AppointmentContext.model_validate(request.context)
    except ValidationError as error:
        raise HookError(400, explain(error, "context.")) from error
    booked: dict[str, list[dict[str, Any]]] = {}
    for appointment in _appointments(context.appointments, context.patientId):
        for reference in _based_on(appointment):
            booked.setdefault(reference, []).append(appointment)
    return ParsedHook(
        request,
        context,
        [],
        _options(request.extension),
        references=tuple(booked),
        appointments=tuple((r, tuple(a)) for r, a in booked.items()),
    )


def _appointments(bundle: dict[str, Any], patient_id: str) -> list[dict[str, Any]]:
    if bundle.get("resourceType") != "Bundle":
        raise HookError(400, "context.appointments must be a FHIR Bundle")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise HookError(400, "context.appointments.entry must list the proposed appointments")
    found = []
    for i, entry in enumerate(entries):
        where = f"context.appointments.entry[{i}].resource"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Appointment":
            raise HookError(400, f"{where} must be an Appointment")
        if not isinstance(resource.get("id"), str) or not _IS_ID(resource["id"]):
            raise HookError(400, f"{where} needs a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")
        for other in _patients(resource):
            if other != f"Patient/{patient_id}":
                raise HookError(
                    400, f"Appointment/{resource['id']} is for {other}, not Patient/{patient_id}"
                )
        found.append(resource)
    return found


def _patients(appointment: dict[str, Any]) -> list[str]:
    participants = appointment.get("participant")
    return [
        str(p["actor"]["reference"])
        for p in (participants if isinstance(participants, list) else ())
        if isinstance(p, dict)
        and isinstance(p.get("actor"), dict)
        and str(p["actor"].get("reference", "")).startswith("Patient/")
    ]


def _based_on(appointment: dict[str, Any]) -> list[str]:
    """The ServiceRequests (local references) the Appointment is booked for; other kinds of
    basedOn cannot be a DLI / HPC boost order here and are passed over."""
    based_on = appointment.get("basedOn")
    return [
        ref["reference"]
        for ref in (based_on if isinstance(based_on, list) else ())
        if isinstance(ref, dict)
        and isinstance(ref.get("reference"), str)
        and ref["reference"].startswith("ServiceRequest/")
        and _IS_REFERENCE(ref["reference"])
    ]


def _order_dispatch(request: HookRequest) -> ParsedHook:
    try:
        context = DispatchContext.model_validate(request.context)
    except ValidationError as error:
        raise HookError(400, explain(error, "context.")) from error
    references = [r for r in context.dispatchedOrders if r.startswith("ServiceRequest/")]
    return ParsedHook(
        request,
        context,
        [],
        _options(request.extension),
        references=tuple(dict.fromkeys(references)),
    )
