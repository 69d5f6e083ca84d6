"""Route dependencies, read from `app.state` (set once by api/app.py's `create_app`).

Async, though they never wait: FastAPI runs a plain `def` dependency in a worker thread, and
that hand-off cost more per call than the rest of the framework (tools/instructions.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cds_service.api.pipeline import PipelineDeps
from cds_service.audit.writer import AuditWriter


async def get_pipeline(request: Request) -> PipelineDeps:
    deps: PipelineDeps = request.app.state.pipeline
    return deps


async def get_audit(request: Request) -> AuditWriter:
    audit: AuditWriter = request.app.state.audit
    return audit


Pipeline = Annotated[PipelineDeps, Depends(get_pipeline)]
Audit = Annotated[AuditWriter, Depends(get_audit)]
