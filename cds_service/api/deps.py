"""Route dependencies, read from `app.state` (set once by api/app.py's `create_app`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cds_service.api.pipeline import PipelineDeps
from cds_service.audit.writer import AuditWriter


def get_pipeline(request: Request) -> PipelineDeps:
    deps: PipelineDeps = request.app.state.pipeline
    return deps


def get_audit(request: Request) -> AuditWriter:
    audit: AuditWriter = request.app.state.audit
    return audit


Pipeline = Annotated[PipelineDeps, Depends(get_pipeline)]
Audit = Annotated[AuditWriter, Depends(get_audit)]
