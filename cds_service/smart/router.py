"""/smart: the SMART on FHIR app (static, built from smart_app/ by esbuild and committed, so the
service runs without npm) and its one API call.

`POST /smart/api/case` takes the record the app read from the EHR with its own SMART token and
answers the whole case (core/case.py). Nothing is stored: like a hook call, the answer is
computed from the request and the request is dropped. It carries no token of ours: it holds
only what the caller already has, and every resource is validated as the hooks validate theirs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from cds_service.api.deps import Pipeline
from cds_service.api.errors import HookError
from cds_service.api.limits import load_checked_json, too_large
from cds_service.core import (
    PatientRecord,
    TooLarge,
    add_prefetch_value,
    case_view,
    patient_of,
    recognise,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
log = logging.getLogger("cds_service.smart")
router = APIRouter(prefix="/smart", include_in_schema=False)


def _body(raw: bytes) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """(orders, record Bundle, patient id) from {"orders": [...], "record": Bundle}."""
    data = load_checked_json(raw)
    if not isinstance(data, dict):
        raise HookError(400, 'the body must be {"orders": [ServiceRequest...], "record": Bundle}')
    orders, record = data.get("orders"), data.get("record")
    if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
        raise HookError(400, "`orders` must list the draft ServiceRequests")
    if not isinstance(record, dict) or record.get("resourceType") != "Bundle":
        raise HookError(400, "`record` must be a FHIR Bundle of the patient's resources")
    patients = {p for o in orders if (p := patient_of(o)) is not None}
    if len(patients) != 1:
        raise HookError(400, "the orders must name exactly one patient (ServiceRequest.subject)")
    return orders, record, next(iter(patients))


@router.post("/api/case")
async def case(request: Request, deps: Pipeline) -> Response:
    orders_json, bundle, patient = _body(await request.body())
    record = PatientRecord(patient_id=patient)
    try:
        add_prefetch_value(record, bundle, "Bundle", limits=deps.limits.structure, where="record")
    except TooLarge as error:
        raise HookError(413, too_large(error)) from None
    orders = [o for raw in orders_json if (o := recognise(raw)) is not None]
    if not orders:
        raise HookError(400, "no order is a DLI (CPT 38242) or HPC boost (CPT 38243) order")
    knowledge = deps.knowledge
    view = case_view(record, orders, knowledge.policies, knowledge.thresholds,
                     deps.clock().date(), deps.new_uuid)  # fmt: skip
    log.info("smart case", extra={"fields": {"patient": patient, "orders": len(orders)}})
    return Response(orjson.dumps(view), media_type="application/json")


@router.get("/launch")
async def launch() -> FileResponse:
    """The SMART launch URL (EHR launch: ?iss=&launch=; standalone: ?iss= only)."""
    return FileResponse(STATIC_DIR / "launch.html", media_type="text/html")


@router.get("/index.html")
async def index() -> FileResponse:
    """The redirect URI: the app itself."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def mount_smart_app(app: FastAPI, docs: bool = False) -> None:
    """The app under /smart; with `docs`, the OpenAPI page at /docs on the Swagger UI files
    the smart_app build copies into static/swagger (FastAPI's default loads them from a CDN,
    so the page was blank offline)."""
    app.include_router(router)
    app.mount("/smart/static", StaticFiles(directory=STATIC_DIR), name="smart-static")
    if docs:

        async def swagger() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{app.title} - API",
                swagger_js_url="/smart/static/swagger/swagger-ui-bundle.js",
                swagger_css_url="/smart/static/swagger/swagger-ui.css",
                swagger_favicon_url="data:,",
            )

        app.add_api_route("/docs", swagger, include_in_schema=False)
        app.state.docs_path = "/docs"  # the home page links it (api/operations.py)
