"""The orders appointment-book and order-dispatch name only by reference, resolved.

Per CDS Hooks 2.0 §prefetch, as for every other key (api/gather.py): the `serviceRequests`
prefetch (CRD 2.2.1's standard template, api/discovery.py) when the client sent it; `null` means
the EHR has none of them; absent (or an OperationOutcome) -> read `ServiceRequest?_id=...` from
`fhirServer` with the hook's token, with the same client, limits and failure rules as the other
fetches. Without prefetch and without a server to read from, 412 (as for any required prefetch).

What is then evaluated: each resolved ServiceRequest that is a DLI / HPC boost order for this
patient. A reference that could not be read, or a DLI / HPC boost order for another patient, is
not evaluated and is named on the answer (never a 500, never another patient's order as this
one's); any other order is not ours to check and is passed over, as on order-sign.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from cds_service.api.discovery import ORDERS_KEY
from cds_service.api.errors import HookError
from cds_service.api.gather import KeyFetch, fetch_all
from cds_service.api.hooks import ParsedHook
from cds_service.api.limits import GatherLimits
from cds_service.core import Order, is_operation_outcome, recognise

_CONFLICT: dict[str, Any] = {}  # the marker of a ServiceRequest given twice, differently
# Why a reference was not evaluated (also the machine-readable reason on the card).
UNREADABLE = "unreadable"
OTHER_PATIENT = "other-patient"
NOT_IN_EHR = "not-in-ehr"
CONFLICTING = "conflicting"


async def resolve_orders(
    parsed: ParsedHook, limits: GatherLimits, transport: httpx.AsyncBaseTransport | None
) -> ParsedHook:
    """`parsed` with its referenced DLI / HPC boost orders resolved into `orders`, and the
    references that could not be evaluated in `not_evaluated`."""
    if not parsed.references:
        return parsed
    found, problem = await _read(parsed, limits, transport)
    orders: list[Order] = []
    skipped: list[tuple[str, str]] = []
    for reference in parsed.references:
        resource = found.get(reference)
        if resource is None or resource is _CONFLICT:
            why = CONFLICTING if resource is _CONFLICT else UNREADABLE if problem else NOT_IN_EHR
            skipped.append((reference, why))
            continue
        order = recognise(resource)
        if order is None:
            continue  # not a DLI / HPC boost order: nothing to check, as on order-sign
        if not _for_patient(resource, parsed.context.patientId):
            skipped.append((reference, OTHER_PATIENT))
            continue
        orders.append(order)
    return dataclasses.replace(parsed, orders=orders, not_evaluated=tuple(skipped))


def _for_patient(resource: dict[str, Any], patient_id: str) -> bool:
    """A resolved order counts only when its subject is this patient (it came from elsewhere:
    one with no subject cannot be shown to be this patient's)."""
    subject = resource.get("subject")
    return isinstance(subject, dict) and subject.get("reference") == f"Patient/{patient_id}"


async def _read(
    parsed: ParsedHook, limits: GatherLimits, transport: httpx.AsyncBaseTransport | None
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Reference -> ServiceRequest, from prefetch or fhirServer; and why reading failed, if."""
    request = parsed.request
    prefetch = request.prefetch or {}
    if ORDERS_KEY in prefetch and not is_operation_outcome(prefetch[ORDERS_KEY]):
        return _by_reference([prefetch[ORDERS_KEY]]), None
    if request.fhirServer is None or request.fhirAuthorization is None:
        lacking = "fhirServer" if request.fhirServer is None else "fhirAuthorization"
        raise HookError(
            412,
            f"the orders this call names ({', '.join(parsed.references)}) are not in prefetch "
            f"`{ORDERS_KEY}` and there is no {lacking} to read them from",
        )
    ids = ",".join(r.split("/", 1)[1] for r in parsed.references)  # FHIR ids: checked on parse
    job = KeyFetch(ORDERS_KEY, f"{request.fhirServer.rstrip('/')}/ServiceRequest?_id={ids}")
    await fetch_all(
        request.fhirServer, request.fhirAuthorization.access_token, [job], limits, transport
    )
    return _by_reference(job.pages), job.problem


def _by_reference(values: list[Any]) -> dict[str, dict[str, Any]]:
    """The ServiceRequests in searchset Bundles (or a bare one), by `ServiceRequest/{id}`; one
    given twice with different content maps to _CONFLICT (which holds is not known, and the
    answer must not depend on the order of the entries)."""
    found: dict[str, dict[str, Any]] = {}
    conflicting: set[str] = set()
    for value in values:
        if not isinstance(value, dict):
            continue  # `null`: the EHR holds none of them
        entries = (
            value.get("entry") if value.get("resourceType") == "Bundle" else [{"resource": value}]
        )
        for entry in entries if isinstance(entries, list) else ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if (
                isinstance(resource, dict)
                and resource.get("resourceType") == "ServiceRequest"
                and isinstance(resource.get("id"), str)
            ):
                reference = f"ServiceRequest/{resource['id']}"
                if found.setdefault(reference, resource) != resource:
                    conflicting.add(reference)  # two versions: which one holds is not known
    return {r: _CONFLICT if r in conflicting else v for r, v in found.items()}
