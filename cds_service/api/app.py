"""FastAPI application: discovery and the two hook services. Thin: parse, gather, decide, log."""

from __future__ import annotations

import gc
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import orjson
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds_service import __version__
from cds_service.api.allowlist import server_allowed
from cds_service.api.auth import RequireClient, client_issuer
from cds_service.api.discovery import REQUIRED_PREFETCH, SERVICES, discovery_document
from cds_service.api.errors import HookError, error_response
from cds_service.api.feedback import add_feedback_route, start_audit
from cds_service.api.gather import FetchLimits, gather, relevant_resources
from cds_service.api.health import health_report
from cds_service.api.hooks import ParsedHook, parse_hook
from cds_service.api.openapi import CARDS_RESPONSE, HOOK_CALL_BODY, REQUEST_ERRORS, UNAUTHORIZED
from cds_service.api.security import harden
from cds_service.audit.record import decision_record
from cds_service.core.decide import Decision, decide
from cds_service.core.model import PatientRecord
from cds_service.policy_store import Knowledge, load
from cds_service.sandbox import SandboxFhir, mount_sandbox
from cds_service.settings import Settings

log = logging.getLogger("cds_service")


def create_app(
    settings: Settings | None = None,
    knowledge: Knowledge | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
    fhir_transport: httpx.AsyncBaseTransport | None = None,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """`fhir_transport` carries the queries to the EHR's FHIR server (default: real HTTP)."""
    settings = settings or Settings()
    knowledge = knowledge or load(settings.cards_dir)
    limits = FetchLimits(
        settings.fhir_budget_seconds, settings.fhir_query_timeout_seconds, settings.fhir_max_pages
    )
    audit = start_audit(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (policies, models, code sets) lives as long as the process;
        # freezing it keeps the garbage collector from rescanning it during requests (tail latency).
        gc.freeze()
        yield
        audit.close()

    app = FastAPI(
        title="DLI / HPC boost medical-necessity CDS Hooks service",
        version=__version__,
        docs_url="/docs" if settings.env == "development" else None,
        redoc_url=None,
        # The schema maps every route and limit: production serves it to nobody.
        openapi_url="/openapi.json" if settings.env == "development" else None,
        lifespan=lifespan,
    )
    app.state.audit = audit
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
    async def health(request: Request) -> dict[str, Any]:
        return await health_report(request, knowledge, audit)

    @app.post(
        "/cds-services/{service_id}",
        dependencies=[RequireClient],
        responses={**CARDS_RESPONSE, **REQUEST_ERRORS},
        openapi_extra=HOOK_CALL_BODY,
    )
    async def call_service(
        service_id: Annotated[str, Path(json_schema_extra={"enum": list(SERVICES)})],
        request: Request,
    ) -> Response:
        started = time.perf_counter()
        service = SERVICES.get(service_id)
        if service is None:
            raise HookError(404, f"no CDS service {service_id!r}; see GET /cds-services")
        parsed = parse_hook(await request.body(), service)
        server = parsed.request.fhirServer
        if server is not None and not server_allowed(
            server, settings.fhir_allowed_servers, settings.env
        ):
            raise HookError(
                400, f"fhirServer {server} is not on this service's allowlist of FHIR servers"
            )

        def audit_call(decision: Decision | None, latency_ms: float, source: str) -> None:
            audit.submit(
                decision_record(
                    decision,
                    recorded_at=clock(),
                    hook_instance=str(parsed.request.hookInstance),
                    service_id=service.id,
                    hook=service.hook,
                    patient_id=parsed.context.patientId,
                    latency_ms=latency_ms,
                    client_iss=client_issuer(request),
                    data_source=source,
                )
            )

        if not parsed.orders:
            audit_call(None, (time.perf_counter() - started) * 1000, "prefetch")
            return JSONResponse({"cards": []})
        now = clock()
        keep = relevant_resources(parsed.orders, now.date(), knowledge)
        gathered = await gather(parsed, limits, fhir_transport, keep)
        record = gathered.record
        decision = decide(
            service.hook,
            parsed.orders,
            record,
            knowledge.policies,
            knowledge.thresholds,
            parsed.options,
            now.date(),
            new_uuid,
            tuple(
                f"{REQUIRED_PREFETCH[key]} data ({key}): {why}"
                for key, why in gathered.unretrieved.items()
            ),
        )
        answer = orjson.dumps(decision.body)
        latency_ms = (time.perf_counter() - started) * 1000

        async def after_answer() -> None:
            # Runs once the answer is sent: the log line and the audit record; and, when this
            # closure is dropped, freeing the request's objects (the parsed prefetch, validated
            # resources, cards), which is a good part of a large call's cost. None of it can
            # change the answer, so the clinician does not wait for it.
            try:
                _log_decision(service.id, parsed, record, decision, latency_ms)
                audit_call(decision, latency_ms, gathered.source)
            except Exception as error:  # the answer is sent; only the type: it may hold data
                log.error("after-answer step failed: %s", type(error).__name__)

        return Response(
            answer, media_type="application/json", background=BackgroundTask(after_answer)
        )

    if settings.sandbox_enabled:
        # The sandbox's no-prefetch mode reads the fixture FHIR server this app hosts itself.
        mount_sandbox(app, knowledge, SandboxFhir(token=secrets.token_urlsafe(16)))
    add_feedback_route(app, audit, clock)
    return app


def _log_decision(
    service_id: str, parsed: ParsedHook, record: PatientRecord, decision: Decision, ms: float
) -> None:
    """Ids and outcomes only: never tokens, prefetch contents or clinical values."""
    if not log.isEnabledFor(logging.INFO):
        return  # the fields are not free to build
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
        "ms": round(ms, 1),
    }
    log.info("hook evaluated", extra={"fields": fields})
