"""The floor: the cheapest FastAPI endpoint that still receives and parses the same request
and answers a fixed card, served the same way as the real app. Every figure is compared to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from starlette.background import BackgroundTask

from cds_service.api.heap import settle_heap
from cds_service.audit.record import DecisionRecord
from cds_service.audit.writer import AuditWriter

_CARD = orjson.dumps({"cards": [{
    "uuid": "00000000-0000-4000-8000-000000000000", "summary": "Fixed card", "indicator": "info",
    "source": {"label": "floor"},
}]})  # fmt: skip


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    settle_heap()  # as the real app does (api/app.py): the same collector settings for both
    yield


async def _release(_: object) -> None:
    """Holds the parsed body until the answer is sent, as the real app holds its request's
    objects: both free them after answering."""


def create_floor_app() -> FastAPI:
    app = FastAPI(lifespan=_lifespan)

    @app.post("/cds-services/{service_id}")
    async def answer(service_id: str, request: Request) -> Response:
        parsed = orjson.loads(await request.body())
        background = BackgroundTask(_release, parsed)
        return Response(_CARD, media_type="application/json", background=background)

    return app


def deciding_resources(request: dict[str, Any]) -> list[tuple[str, int, Any]]:
    """(prefetch key, entry index, fhir.resources model) of each resource the service validates
    when it answers `request`: read from the record of one real in-process answer (eager
    models, and the lazy ones a fact read)."""
    from cds_service.api.discovery import SERVICES
    from cds_service.api.pipeline import answer
    from cds_service.bench.run import pipeline_deps  # not at import: the floor stays bare

    service = SERVICES["dli-hpc-order-sign"]
    result = asyncio.run(answer(orjson.dumps(request), service, pipeline_deps()))
    if result.gathered is None:
        raise RuntimeError("the bench's order-sign was not evaluated")
    record = result.gathered.record
    lazy = [o.read for o in record.observations if o.read is not None]
    models = [*record.conditions, *record.procedures, *record.coverages, *lazy]
    models += list(record.organizations.values())
    wanted = {(m.get_resource_type(), m.id): type(m) for m in models}
    found = []
    for key, value in request["prefetch"].items():
        entries = value.get("entry", []) if isinstance(value, dict) else []
        for index, entry in enumerate(entries):
            resource = entry["resource"]
            model = wanted.get((resource["resourceType"], resource.get("id")))
            if model is not None:
                found.append((key, index, model))
    return found


def create_validation_floor_app(durable_record: bool = False) -> FastAPI:
    """The floor plus the steps no answer may skip: validating, with fhir.resources, each
    resource the service's answer to the bench's 300-resource order-sign rests on (found once,
    at start-up, by `deciding_resources`; per call only their validation, no search) and, with
    `durable_record`, an audit record on disk before the answer (the service's own writer and
    spool, with a record naming no evaluation). Its ratio to the floor is the least any answer
    that keeps those rules can cost."""
    from cds_service.api.feedback import start_audit
    from cds_service.bench.workload import order_sign_request
    from cds_service.settings import Settings

    # uvicorn calls the factory on its running loop; the in-process answer needs a loop of its own
    with ThreadPoolExecutor(1) as pool:
        where = pool.submit(deciding_resources, order_sign_request(300)).result()
    audit = start_audit(Settings()) if durable_record else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _lifespan(app):
            yield
        if audit is not None:
            audit.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/cds-services/{service_id}")
    async def answer(service_id: str, request: Request) -> Response:
        parsed = orjson.loads(await request.body())
        prefetch = parsed["prefetch"]
        models = []
        for key, index, model in where:
            models.append(model.model_validate(prefetch[key]["entry"][index]["resource"]))
        if audit is not None:
            await _on_disk(audit, service_id, parsed)
        background = BackgroundTask(_release, (parsed, models))
        return Response(_CARD, media_type="application/json", background=background)

    return app


def create_audited_validation_floor_app() -> FastAPI:
    return create_validation_floor_app(durable_record=True)


async def _on_disk(audit: AuditWriter, service_id: str, parsed: dict[str, Any]) -> None:
    """As api/pipeline.py audit_answer: hand the record over, wait until it is on disk."""
    loop = asyncio.get_running_loop()
    stored = loop.create_future()

    def settle() -> None:
        if not stored.done():
            stored.set_result(None)

    record = DecisionRecord(
        recorded_at=datetime.now(UTC),
        hook_instance=str(parsed.get("hookInstance")),
        service_id=service_id,
        hook=str(parsed.get("hook")),
        patient_id=str(parsed.get("context", {}).get("patientId")),
        orders=(),
        evaluations=(),
        cards=(),
        latency_ms=0.0,
    )

    def on_stored() -> None:  # on the writer's spool thread
        loop.call_soon_threadsafe(settle)

    audit.submit(record, on_stored)
    await stored
