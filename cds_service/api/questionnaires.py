"""The worksheets over FHIR: read, search by canonical url, and DTR $questionnaire-package.

Same client JWT rules as the hooks (`RequireClient`). The service keeps no patient data, so
`$questionnaire-package` pre-fills only from what the request carries: the DTR inputs `coverage`
(1..*) and `order` (0..*, the draft ServiceRequests), plus the project's `patientRecord`
parameter, a Bundle of the patient's Conditions, Procedures, Observations and regimen
MedicationAdministrations / MedicationRequests (what the hook's prefetch would hold). Without it, only the order details are pre-filled. Every resource is
validated with fhir.resources (Parameters as a whole), as the hooks validate theirs.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fhir.resources.R4B.parameters import Parameters
from pydantic import ValidationError

from cds_service.api.auth import RequireClient
from cds_service.api.deps import Pipeline
from cds_service.api.errors import HookError, operation_outcome
from cds_service.api.hooks import explain
from cds_service.api.limits import check_fhir_text, check_json_shape, too_large
from cds_service.api.openapi import (
    PACKAGE_BODY,
    PACKAGE_RESPONSES,
    QUESTIONNAIRE_READ,
    QUESTIONNAIRE_SEARCH,
)
from cds_service.api.pipeline import PipelineDeps, worker_deps
from cds_service.core import (
    INVALID_FHIR,
    PatientRecord,
    StructureLimits,
    TooLarge,
    Worksheet,
    add_prefetch_value,
    add_resource,
    patient_of,
    questionnaire_package,
    recognise,
    worksheets,
)

log = logging.getLogger("cds_service.questionnaires")
router = APIRouter(prefix="/fhir/Questionnaire", dependencies=[RequireClient])
FHIR_JSON = "application/fhir+json"
RECORD_PARAMETER = "patientRecord"


def _fhir(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type=FHIR_JSON)


def _searchset(sheets: list[Worksheet]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(sheets),
        **({"entry": [{"resource": s.questionnaire} for s in sheets]} if sheets else {}),
    }


@router.get("", responses=QUESTIONNAIRE_SEARCH)
async def search(
    deps: Pipeline,
    url: Annotated[str | None, Query()] = None,
    version: Annotated[str | None, Query()] = None,
) -> Response:
    """`?url=` (a canonical, optionally `url|version`), `&version=`; no url lists them all."""
    wanted, _, pinned = (url or "").partition("|")
    version = version or pinned or None
    found = [
        s
        for s in worksheets(deps.knowledge.policies)
        if (not wanted or s.url == wanted) and (version is None or s.version == version)
    ]
    return _fhir(_searchset(found))


@router.get("/{questionnaire_id}", responses=QUESTIONNAIRE_READ)
async def read(questionnaire_id: str, deps: Pipeline) -> Response:
    for sheet in worksheets(deps.knowledge.policies):
        if sheet.id == questionnaire_id:
            return _fhir(sheet.questionnaire)
    raise HookError(404, f"no Questionnaire/{questionnaire_id}; see GET /fhir/Questionnaire")


def _parameters(body: bytes) -> list[dict[str, Any]]:
    """The validated Parameters' `parameter` list, as JSON."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HookError(400, f"request body is not valid JSON: {error}") from error
    check_json_shape(data)
    check_fhir_text(body)
    if not isinstance(data, dict) or data.get("resourceType") != "Parameters":
        raise HookError(400, "the body must be a FHIR Parameters resource")
    try:
        Parameters.model_validate(data)
    except (ValidationError, *INVALID_FHIR) as error:
        detail = explain(error) if isinstance(error, ValidationError) else type(error).__name__
        raise HookError(400, f"invalid Parameters: {detail}") from error
    return [p for p in data.get("parameter") or () if isinstance(p, dict)]


def _patients(parameters: list[dict[str, Any]]) -> set[str]:
    """Every patient the inputs name: the orders' subjects, the coverages' beneficiaries and
    the patientRecord's resources' subject / patient."""
    found: set[str] = set()
    for part in parameters:
        resource = part.get("resource")
        if not isinstance(resource, dict):
            continue
        entries = resource.get("entry") if part.get("name") == RECORD_PARAMETER else None
        inner = (
            [e.get("resource") for e in entries if isinstance(e, dict)]
            if isinstance(entries, list)
            else [resource]
        )
        for raw in inner:
            patient = patient_of(raw) if isinstance(raw, dict) else None
            if patient is not None:
                found.add(patient)
    return found


def _inputs(
    parameters: list[dict[str, Any]], limits: StructureLimits
) -> tuple[PatientRecord, list[Any], str]:
    """The record (coverage + patientRecord), the recognised orders, and the patient id.
    One patient per call: inputs that name different patients are refused (400)."""
    patients = _patients(parameters)
    if len(patients) > 1:
        raise HookError(
            400,
            f"the orders, coverage and patientRecord name {len(patients)} different patients;"
            " $questionnaire-package answers for one patient at a time",
        )
    patient = next(iter(patients), "")
    record, orders = PatientRecord(patient_id=patient), []
    try:
        for part in parameters:
            name, resource = part.get("name"), part.get("resource")
            if name == "coverage":
                add_resource(record, resource, "Coverage", limits=limits)
            elif name == RECORD_PARAMETER:
                add_prefetch_value(
                    record, resource, "Bundle", limits=limits, where=RECORD_PARAMETER
                )
            elif name == "order" and isinstance(resource, dict):
                order = (
                    recognise(resource)
                    if resource.get("resourceType") == "ServiceRequest"
                    else None
                )
                if order is not None:
                    orders.append(order)
    except TooLarge as error:
        raise HookError(413, too_large(error)) from None
    if not record.coverages:
        raise HookError(400, "$questionnaire-package needs a `coverage` parameter (DTR 1..*)")
    if not orders:
        raise HookError(400, "no `order` parameter is a DLI (CPT 38242) or HPC boost (38243) order")
    return record, orders, patient


@router.post("/$questionnaire-package", responses=PACKAGE_RESPONSES, openapi_extra=PACKAGE_BODY)
async def package(request: Request, deps: Pipeline) -> Response:
    """DTR: the worksheets for the Coverage's payer and the orders, each pre-filled. Answered
    as a hook call of its size is (api/offload.py): in the worker process when large, taking
    turns on the loop when mid-sized."""
    body, offload = await request.body(), deps.offload
    if offload is not None and offload.takes(body, worksheets=True):
        answer, patient_id, sheets = await offload.run(_package_in_worker, body)
    elif offload is not None and offload.waits_turn(len(body)):
        async with offload.turn:
            answer, patient_id, sheets = package_answer(body, deps)
    else:
        answer, patient_id, sheets = package_answer(body, deps)
    log.info(
        "questionnaire package",
        extra={"fields": {"patient": patient_id, "questionnaires": sheets}},
    )
    return Response(answer, media_type=FHIR_JSON)


def _package_in_worker(body: bytes) -> tuple[bytes, str, list[str]]:
    return package_answer(body, worker_deps())


def package_answer(body: bytes, deps: PipelineDeps) -> tuple[bytes, str, list[str]]:
    """The package as JSON, the patient id and the worksheets sent (for the log line)."""
    record, orders, patient_id = _inputs(_parameters(body), deps.limits.structure)
    today = deps.clock().date()
    knowledge = deps.knowledge
    built = questionnaire_package(
        record, orders, knowledge.policies, knowledge.thresholds, today, patient_id
    )
    out = [
        {
            "name": "PackageBundle",
            "resource": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": sheet.questionnaire}, {"resource": response}],
            },
        }
        for sheet, response in built
    ]
    if not out:  # e.g. an HPC boost under a DLI-only policy: nothing to document
        outcome = operation_outcome(
            "no worksheet: the policies state no criteria for these orders",
            "not-found",
            "information",
        )
        out = [{"name": "operationOutcome", "resource": outcome}]
    answer = orjson.dumps({"resourceType": "Parameters", "parameter": out})
    return answer, patient_id, [s.id for s, _ in built]
