"""The hook routes: discovery, health and the hook call. Thin: the work is api/pipeline.py."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from cds_service.api.auth import RequireClient, client_issuer
from cds_service.api.deps import Audit, Pipeline
from cds_service.api.discovery import SERVICES, discovery_document
from cds_service.api.errors import HookError
from cds_service.api.health import health_report
from cds_service.api.metrics import CallFigures, Metrics
from cds_service.api.openapi import CARDS_RESPONSE, HOOK_CALL_BODY, REQUEST_ERRORS, UNAUTHORIZED
from cds_service.api.pipeline import Answer, after_answer, answer, audit_answer

router = APIRouter()


@router.get("/cds-services", dependencies=[RequireClient], responses=UNAUTHORIZED)
async def discovery() -> dict[str, Any]:
    return discovery_document()


@router.get("/healthz")
async def health(request: Request, deps: Pipeline, audit: Audit) -> dict[str, Any]:
    return await health_report(request, deps.knowledge, audit)


@router.post(
    "/cds-services/{service_id}",
    dependencies=[RequireClient],
    responses={**CARDS_RESPONSE, **REQUEST_ERRORS},
    openapi_extra=HOOK_CALL_BODY,
)
async def call_service(
    service_id: Annotated[str, Path(json_schema_extra={"enum": list(SERVICES)})],
    request: Request,
    deps: Pipeline,
) -> Response:
    service = SERVICES.get(service_id)
    if service is None:
        raise HookError(404, f"no CDS service {service_id!r}; see GET /cds-services")
    started, metrics = time.perf_counter(), request.app.state.metrics
    try:
        result = await answer(await request.body(), service, deps)
    except HookError as error:
        metrics.rejected(service.id, error.status)
        raise
    # Durable before acknowledged: the audit record is on disk before the answer goes out.
    await audit_answer(result, service, deps, client_issuer(request))
    _count(metrics, service.id, service.hook, result, time.perf_counter() - started)
    # The log line runs once the answer is sent; and, when the task is dropped, the request's
    # objects (parsed prefetch, validated resources, cards) are freed, a good part of a large
    # call's cost. None of it can change the answer.
    task = BackgroundTask(after_answer, service, result)
    return Response(result.body, media_type="application/json", background=task)


def _count(metrics: Metrics, service_id: str, hook: str, result: Answer, seconds: float) -> None:
    metrics.observe(
        CallFigures(
            service_id,
            hook,
            result.decision,
            result.gathered,
            result.parsed.options.crd_2_2,
            seconds,
        )
    )
