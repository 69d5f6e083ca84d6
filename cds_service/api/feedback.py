"""`POST /cds-services/{id}/feedback` (CDS Hooks 2.0 §feedback) and the audit writer's wiring.

Feedback is stored synchronously (in a worker thread) so the client learns whether it was
kept; it is not on the clinical answer path. Unknown card uuids are stored and flagged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from cds_service.api.auth import RequireClient, client_issuer
from cds_service.api.discovery import SERVICES
from cds_service.api.errors import HookError, error_response
from cds_service.api.hooks import explain
from cds_service.api.limits import check_fhir_text
from cds_service.api.openapi import FEEDBACK_BODY, FEEDBACK_RESPONSES
from cds_service.audit.feedback import FeedbackItem, FeedbackRequest
from cds_service.audit.spool import AuditSpool, spool_path
from cds_service.audit.store import AuditStore, database_url
from cds_service.audit.writer import AuditWriter, StorageUnavailable, describe
from cds_service.settings import Settings

log = logging.getLogger("cds_service")


def start_audit(settings: Settings) -> AuditWriter:
    url = database_url(settings.data_dir, settings.database_url)
    return AuditWriter(AuditStore(url), spool=AuditSpool(spool_path(settings.data_dir, url)))


def parse_feedback(body: bytes) -> list[FeedbackItem]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HookError(400, f"request body is not valid JSON: {error}") from error
    check_fhir_text(body)
    try:
        return FeedbackRequest.model_validate(data).feedback
    except ValidationError as error:
        raise HookError(400, explain(error)) from error


def add_feedback_route(app: FastAPI, audit: AuditWriter, clock: Callable[[], datetime]) -> None:
    @app.post(
        "/cds-services/{service_id}/feedback",
        dependencies=[RequireClient],
        responses=FEEDBACK_RESPONSES,
        openapi_extra=FEEDBACK_BODY,
    )
    async def feedback(
        service_id: Annotated[str, Path(json_schema_extra={"enum": list(SERVICES)})],
        request: Request,
    ) -> JSONResponse:
        if service_id not in SERVICES:
            raise HookError(404, f"no CDS service {service_id!r}; see GET /cds-services")
        items = parse_feedback(await request.body())
        iss = client_issuer(request)

        def store() -> list[str]:
            rows = audit.ready_store().add_feedback(items, service_id, clock(), iss)
            return [row.card_uuid for row in rows if not row.card_known]

        try:
            unknown = await run_in_threadpool(store)
        except (StorageUnavailable, SQLAlchemyError) as error:
            log.error("feedback service=%s not stored: %s", service_id, describe(error))
            return error_response(503, "feedback not stored: the audit storage is unavailable")
        log.info(
            "feedback service=%s items=%d outcomes=%s unknown_cards=%d",
            service_id,
            len(items),
            ",".join(f"{i.card}:{i.outcome}" for i in items),
            len(unknown),
        )
        return JSONResponse({"stored": len(items), "unknownCards": unknown})
