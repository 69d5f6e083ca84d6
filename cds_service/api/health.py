"""`GET /healthz`: ok / degraded for anyone (a load balancer's probe); the details (policies,
audit counts, the last storage error, which names the database host) only for a verified CDS
client, or when authentication is off (development)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from cds_service.api.auth import Unauthorized, authenticate
from cds_service.audit.writer import AuditWriter
from cds_service.policy_store import Knowledge


async def health_report(
    request: Request, knowledge: Knowledge, audit: AuditWriter
) -> dict[str, Any]:
    details = audit.health()
    status = "ok" if details["status"] == "ok" else "degraded"
    if request.app.state.verifier is not None:
        if "authorization" not in request.headers:
            return {"status": status}
        try:
            await authenticate(request)
        except Unauthorized:
            return {"status": status}
    return {"status": status, "policies": [p.id for p in knowledge.policies], "audit": details}
