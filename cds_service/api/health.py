"""`GET /healthz`: ok / degraded for anyone (a load balancer's probe; degraded: the audit storage
or the JWT replay cache is failing); the details (policies, audit counts, the last storage error,
which names the database host) only for a verified CDS client, or when authentication is off
(development)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from cds_service.api.auth import Unauthorized, authenticate
from cds_service.api.replay import ReplayCheckUnavailable
from cds_service.audit.writer import AuditWriter
from cds_service.policy_store import Knowledge


async def health_report(
    request: Request, knowledge: Knowledge, audit: AuditWriter
) -> dict[str, Any]:
    details = audit.health()
    verifier = request.app.state.verifier
    replay = verifier.replay.health() if verifier is not None else None
    healthy = details["status"] == "ok" and (replay is None or replay["status"] == "ok")
    status = "ok" if healthy else "degraded"
    if verifier is not None:
        if "authorization" not in request.headers:
            return {"status": status}
        try:
            await authenticate(request)
        except (Unauthorized, ReplayCheckUnavailable):
            return {"status": status}
    report = {"status": status, "policies": [p.id for p in knowledge.policies], "audit": details}
    return report | ({"replayCache": replay} if replay else {})
