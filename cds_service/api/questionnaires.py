"""The worksheets over FHIR: read, search by canonical url, and DTR $questionnaire-package.

Same client JWT rules as the hooks (`RequireClient`). `$questionnaire-package` takes DTR's inputs:
`coverage` (1..), `order` (the draft ServiceRequests), `questionnaire` (canonicals: exactly those
worksheets), `context` (the CRD coverage-assertion-id: accepted; the service keeps nothing
between calls, so it links to nothing), plus the project's optional `patientRecord` Bundle (what
the hook's prefetch would hold), the one source of record pre-fill: the service keeps no patient
data. The output is named per DTR version (`PackageBundle` / `operationOutcome` in DTR 2.0.1,
`packagebundle` / `outcome` in DTR 2.1+, chosen by the input's `meta.profile` version). A
Coverage whose payer has no policy here, without `questionnaire`, is a 422, as is DTR 2.0.1's
empty package. Every resource is validated with fhir.resources (Parameters as a whole).
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
from cds_service.api.limits import load_checked_json, too_large
from cds_service.api.openapi import (
    PACKAGE_BODY,
    PACKAGE_RESPONSES,
    QUESTIONNAIRE_READ,
    QUESTIONNAIRE_SEARCH,
)
from cds_service.api.pipeline import PipelineDeps, worker_deps
from cds_service.core import (
    BUNDLE_PROFILE,
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
DTR_BASE = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/"
INPUT_PROFILE = DTR_BASE + "dtr-qpackage-input-parameters"
OUTPUT_PROFILE = DTR_BASE + "dtr-qpackage-output-parameters"
# DTR version -> (package parameter name, outcome parameter name) of dtr-qpackage-output-parameters
# (HL7/davinci-dtr input/fsh/DTRParameters.fsh at 2.0.1 and 2.2.0).
OUTPUT_NAMES = {
    "2.0.1": ("PackageBundle", "operationOutcome"),
    "2.2": ("packagebundle", "outcome"),
}


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


def _parameters(body: bytes) -> tuple[list[dict[str, Any]], str]:
    """The validated Parameters' `parameter` list, as JSON, and the DTR version asked for."""
    data = load_checked_json(body)
    if not isinstance(data, dict) or data.get("resourceType") != "Parameters":
        raise HookError(400, "the body must be a FHIR Parameters resource")
    try:
        Parameters.model_validate(data)
    except (ValidationError, *INVALID_FHIR) as error:
        detail = explain(error) if isinstance(error, ValidationError) else type(error).__name__
        raise HookError(400, f"invalid Parameters: {detail}") from error
    return [p for p in data.get("parameter") or () if isinstance(p, dict)], dtr_version(data)


def dtr_version(data: dict[str, Any]) -> str:
    """ "2.2" when the input Parameters claim DTR 2.1 or later's input profile (`meta.profile`
    `dtr-qpackage-input-parameters|2.2.0`); else "2.0.1" (also for no version: what a DTR
    2.0.1 client, which names no version, reads)."""
    for claimed in (data.get("meta") or {}).get("profile") or ():
        url, _, version = str(claimed).partition("|")
        if url == INPUT_PROFILE and version and not version.startswith(("1.", "2.0")):
            return "2.2"
    return "2.0.1"


def _canonicals(parameters: list[dict[str, Any]]) -> tuple[str, ...]:
    """The DTR `questionnaire` inputs (canonicals of the worksheets asked for)."""
    return tuple(
        p["valueCanonical"]
        for p in parameters
        if p.get("name") == "questionnaire" and isinstance(p.get("valueCanonical"), str)
    )


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
    parameters, dtr = _parameters(body)
    record, orders, patient_id = _inputs(parameters, deps.limits.structure)
    knowledge, wanted = deps.knowledge, _canonicals(parameters)
    built = questionnaire_package(
        record,
        orders,
        knowledge.policies,
        knowledge.thresholds,
        deps.clock().date(),
        patient_id,
        dtr,
        wanted,
    )
    if not built.payer_recognised and not wanted:
        raise HookError(
            422,
            "the Coverage names no payer whose policy this service holds; ask for a worksheet "
            "by its canonical with the `questionnaire` parameter",
        )
    name, outcome_name = OUTPUT_NAMES[dtr]
    out: list[dict[str, Any]] = [
        {"name": name, "resource": _package_bundle(sheet, response)}
        for sheet, response in built.entries
    ]
    issues = [
        f"no worksheet {canonical} for these orders" for canonical in built.unknown_canonicals
    ]
    if not out:  # e.g. an HPC boost under a DLI-only policy: nothing to document
        if dtr == "2.0.1":  # DTR 2.0.1 output: PackageBundle 1..*
            raise HookError(422, "no worksheet: the policies state no criteria for these orders")
        issues.append("no worksheet: the policies state no criteria for these orders")
    if issues:
        outcome = operation_outcome("; ".join(issues), "not-found", "warning")
        out.append({"name": outcome_name, "resource": outcome})
    answer = orjson.dumps(
        {"resourceType": "Parameters", "meta": {"profile": [OUTPUT_PROFILE]}, "parameter": out}
    )
    return answer, patient_id, [s.id for s, _ in built.entries]


def _package_bundle(sheet: Worksheet, response: dict[str, Any]) -> dict[str, Any]:
    """DTR-QPackageBundle: a collection, the Questionnaire first, then its response."""
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [BUNDLE_PROFILE]},
        "type": "collection",
        "entry": [{"resource": sheet.questionnaire}, {"resource": response}],
    }
