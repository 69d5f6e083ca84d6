"""Running the service: the home page's pointers, `/metrics`, and the assertion look-up a
dispute needs (`GET /audit/assertions/{coverage-assertion-id}`)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from cds_service import __version__
from cds_service.api.deps import Audit
from cds_service.api.errors import HookError
from cds_service.api.openapi import OPERATION_OUTCOME, UNAUTHORIZED
from cds_service.api.operator import operator_access
from cds_service.audit.report import assertion_dict
from cds_service.audit.writer import AuditWriter, StorageUnavailable

log = logging.getLogger("cds_service")
router = APIRouter()

AssertionId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9\-.]{1,64}$",
        description="The CRD coverage-assertion-id of a coverage-information systemAction",
    ),
]


@router.get("/", include_in_schema=False)
async def home(request: Request) -> dict[str, Any]:
    """Where to go from here (a newcomer's first request)."""
    links = {
        "discovery": "/cds-services",
        "health": "/healthz",
        "metrics": "/metrics",
        "sandbox": getattr(request.app.state, "sandbox_path", None),  # set by compose.py
        "docs": getattr(request.app.state, "docs_path", None),  # development only
        "integrationGuide": "docs/integration.md in the source repository",
    }
    return {
        "service": request.app.title,
        "version": __version__,
        "links": {k: v for k, v in links.items() if v is not None},
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format; for the operator or a verified client (api/operator.py)."""
    await operator_access(request)
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description + " (OperationOutcome)",
        "content": {"application/fhir+json": {"schema": OPERATION_OUTCOME}},
    }


ASSERTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The decision record behind the assertion: ids and codes only"},
    400: _error("Not a coverage-assertion-id"),
    **UNAUTHORIZED,
    404: _error("No such assertion recorded (or it was made to another client)"),
    503: _error("The audit database (or the JWT replay check) is unavailable"),
}


@router.get("/audit/assertions/{assertion_id}", responses=ASSERTION_RESPONSES)
async def assertion(assertion_id: AssertionId, request: Request, audit: Audit) -> dict[str, Any]:
    """What the service asserted under a coverage-assertion-id: time, service, hook, orders,
    payer, policy id and version, determination, each criterion's status and evidence ids, the
    worksheet answers used, the data source. Ids and codes only, never clinical values. A CDS
    client sees only what it was told itself; the operator sees every assertion."""
    access = await operator_access(request)
    try:
        found = await run_in_threadpool(_lookup, audit, assertion_id)
    except (StorageUnavailable, SQLAlchemyError) as error:
        log.error("assertion look-up failed: %s", type(error).__name__)
        raise HookError(503, "the audit database is unavailable; retry later") from error
    if found is None or not (access.operator or found["clientIss"] == access.client_iss):
        raise HookError(404, f"no coverage assertion {assertion_id!r} recorded")
    return found


def _lookup(audit: AuditWriter, assertion_id: str) -> dict[str, Any] | None:
    row = audit.ready_store().assertion(assertion_id)
    return None if row is None else assertion_dict(row, assertion_id)

