"""Who may read the operating endpoints (`/metrics`, `/audit/assertions/{id}`).

As `/healthz`'s detail: anyone when authentication is off (development), else a verified CDS
client JWT, or the operator: a bearer token equal to `CDS_OPERATOR_TOKEN` (a Prometheus
scraper cannot mint client JWTs) or a caller inside `CDS_OPERATOR_NETWORKS`. Refusals are the
same fixed 401 as the hooks'.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from fastapi import Request

from cds_service.api.auth import authenticate, client_issuer
from cds_service.settings import Settings


@dataclass(frozen=True)
class Access:
    operator: bool  # sees everything
    client_iss: str | None = None  # a CDS client: sees what it was told itself


def _from_operator_network(request: Request, settings: Settings) -> bool:
    if not settings.operator_networks or request.client is None:
        return False
    try:
        caller = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False  # the test client's "testclient", a unix socket
    return any(
        caller in ipaddress.ip_network(n, strict=False) for n in settings.operator_networks
    )


def _operator_token(request: Request, settings: Settings) -> bool:
    expected = settings.operator_token
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


async def operator_access(request: Request) -> Access:
    """The caller's access; raises Unauthorized (401) when it has none."""
    settings: Settings = request.app.state.pipeline.settings
    if request.app.state.verifier is None:
        return Access(operator=True)
    if _operator_token(request, settings) or _from_operator_network(request, settings):
        return Access(operator=True)
    await authenticate(request)  # Unauthorized / ReplayCheckUnavailable propagate
    return Access(operator=False, client_iss=client_issuer(request))
