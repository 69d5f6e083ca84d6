"""FastAPI application: discovery and the two hook services. Thin: parse, gather, decide, log."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds_service import __version__
from cds_service.api.auth import RequireClient
from cds_service.api.discovery import PREFETCH, REQUIRED_PREFETCH, SERVICES, discovery_document
from cds_service.api.errors import HookError, error_response
from cds_service.api.hooks import ParsedHook, parse_hook
from cds_service.api.openapi import CARDS_RESPONSE, HOOK_CALL_BODY, REQUEST_ERRORS, UNAUTHORIZED
from cds_service.api.security import harden
from cds_service.core.decide import Decision, decide
from cds_service.core.model import PatientRecord
from cds_service.core.record import add_prefetch_value, is_operation_outcome
from cds_service.policy_store import Knowledge, load
from cds_service.settings import Settings

log = logging.getLogger("cds_service")


def gather_prefetch(parsed: ParsedHook) -> tuple[PatientRecord, list[str]]:
    """The record from prefetch, and the required keys it lacks (absent or an OperationOutcome)."""
    record = PatientRecord()
    prefetch = parsed.request.prefetch or {}
    missing = []
    for key, resource_type in REQUIRED_PREFETCH.items():
        if key not in prefetch or is_operation_outcome(prefetch[key]):
            missing.append(key)
            record.unavailable.add(resource_type)
            continue
        add_prefetch_value(record, prefetch[key], resource_type)
    return record, missing


def create_app(
    settings: Settings | None = None,
    knowledge: Knowledge | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or Settings()
    knowledge = knowledge or load(settings.cards_dir)
    app = FastAPI(
        title="DLI / HPC boost medical-necessity CDS Hooks service",
        version=__version__,
        docs_url="/docs" if settings.env == "development" else None,
        redoc_url=None,
    )
    harden(app, settings, jwks_transport)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "; ".join(str(e.get("msg")) for e in exc.errors()[:5]))

    @app.exception_handler(HookError)
    async def _hook_error(request: Request, exc: HookError) -> JSONResponse:
        log.info(
            "hook rejected", extra={"fields": {"path": request.url.path, "status": exc.status}}
        )
        return error_response(exc.status, exc.diagnostics)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__)  # no message: it may hold data
        return error_response(500, "internal error; the request was not evaluated")

    @app.get("/cds-services", dependencies=[RequireClient], responses=UNAUTHORIZED)
    async def discovery() -> dict[str, Any]:
        return discovery_document()

    @app.get("/healthz")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "policies": [p.id for p in knowledge.policies]}

    @app.post(
        "/cds-services/{service_id}",
        dependencies=[RequireClient],
        responses={**CARDS_RESPONSE, **REQUEST_ERRORS},
        openapi_extra=HOOK_CALL_BODY,
    )
    async def call_service(
        service_id: Annotated[str, Path(json_schema_extra={"enum": list(SERVICES)})],
        request: Request,
    ) -> JSONResponse:
        started = time.perf_counter()
        service = SERVICES.get(service_id)
        if service is None:
            raise HookError(404, f"no CDS service {service_id!r}; see GET /cds-services")
        parsed = parse_hook(await request.body(), service)
        if not parsed.orders:
            return JSONResponse({"cards": []})
        record, missing = gather_prefetch(parsed)
        if missing:
            raise HookError(
                412,
                "required prefetch not provided and no way to fetch it: "
                + ", ".join(f"{k} ({PREFETCH[k]})" for k in missing),
            )
        now = clock()
        decision = decide(
            service.hook,
            parsed.orders,
            record,
            knowledge.policies,
            knowledge.thresholds,
            parsed.options,
            now.date(),
            new_uuid,
        )
        _log_decision(service.id, parsed, record, decision, started)
        return JSONResponse(decision.body)

    return app


def _log_decision(
    service_id: str, parsed: ParsedHook, record: PatientRecord, decision: Decision, started: float
) -> None:
    """Ids and outcomes only: never tokens, prefetch contents or clinical values."""
    fields = {
        "hook": parsed.request.hook,
        "service": service_id,
        "hookInstance": str(parsed.request.hookInstance),
        "patient": parsed.context.patientId,
        "orders": [o.reference for o in parsed.orders],
        "policies": sorted({e.policy.id for e in decision.evaluations}),
        "determinations": {
            f"{e.order.reference} {e.policy.id}": e.determination.value
            for e in decision.evaluations
        },
        "unreadable_resources": len(record.problems),
        "payer_recognised": decision.route.recognised,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    log.info("hook evaluated", extra={"fields": fields})
