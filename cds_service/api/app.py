"""The production app factory: settings and knowledge in, the CDS Hooks service out.

No development tooling is imported here: the browser sandbox is mounted by a separate step
(`cds_service.compose`), so the production app never loads scenarios or the fixture server.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds_service import __version__
from cds_service.api.auth import JwtVerifier
from cds_service.api.errors import HookError, error_response
from cds_service.api.feedback import add_feedback_route, start_audit
from cds_service.api.heap import settle_heap
from cds_service.api.limits import GatherLimits
from cds_service.api.metrics import Metrics
from cds_service.api.offload import Offload
from cds_service.api.operations import router as operations_router
from cds_service.api.pipeline import PipelineDeps, adopt_in_worker
from cds_service.api.questionnaires import router as questionnaire_router
from cds_service.api.routes import router
from cds_service.api.security import harden
from cds_service.audit.writer import AuditWriter
from cds_service.policy_store import Knowledge, load
from cds_service.settings import Settings
from cds_service.smart.router import mount_smart_app

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
    limits = GatherLimits.from_settings(settings)
    offload = Offload(
        settings.large_call_bytes,
        settings.large_call_workers,
        settings.large_call_queue,
        settings.turn_call_bytes,
    )
    audit = start_audit(settings)
    app = FastAPI(
        title="DLI / HPC boost medical-necessity CDS Hooks service",
        version=__version__,
        docs_url=None,  # /docs is served from our own assets (cds_service/smart/router.py)
        redoc_url=None,
        # The schema maps every route and limit: production serves it to nobody.
        openapi_url="/openapi.json" if settings.env == "development" else None,
        lifespan=_lifespan(audit, offload),
    )
    app.state.audit = audit
    app.state.metrics = Metrics(audit, offload, lambda: _replay_health(app))
    app.state.pipeline = PipelineDeps(
        settings, knowledge, limits, audit, clock, new_uuid, fhir_transport, offload
    )
    offload.bind(adopt_in_worker, app.state.pipeline)
    harden(app, settings, jwks_transport, audit)
    _add_error_handlers(app)
    app.include_router(router)
    app.include_router(questionnaire_router)
    app.include_router(operations_router)
    # the SMART app the cards link to (issue 21), and /docs without a CDN in development
    mount_smart_app(app, docs=settings.env == "development")
    add_feedback_route(app, audit, clock)
    return app


def _replay_health(app: FastAPI) -> dict[str, str] | None:
    verifier: JwtVerifier | None = getattr(app.state, "verifier", None)  # set by harden()
    return None if verifier is None else verifier.replay.health()


def _lifespan(
    audit: AuditWriter, offload: Offload
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settle_heap()  # tail latency: no collector pass over start-up objects during calls
        yield
        if app.state.verifier is not None:
            app.state.verifier.replay.close()
        offload.close()
        audit.close()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None  # a 405 carries Allow
        return error_response(exc.status_code, str(exc.detail), headers)

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
