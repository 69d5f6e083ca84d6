"""Wire the trust and hardening pieces into the app: client JWT verification, CORS, body limits.

Refuses to build a production app that would trust anyone (ConfigError with what to set).
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware

from cds_service.api.auth import JwtVerifier, Unauthorized, unauthorized_response
from cds_service.api.errors import operation_outcome
from cds_service.api.issuers import ConfigError, Issuer, load_issuers
from cds_service.api.jwks import JwksCache
from cds_service.api.limits import BodyLimit
from cds_service.api.replay import (
    DatabaseReplayCache,
    MemoryReplayCache,
    ReplayCache,
    ReplayCheckUnavailable,
)
from cds_service.audit.writer import AuditWriter
from cds_service.settings import Settings, secure_url

REPLAY_UNCHECKED = (
    "the token could not be checked against earlier calls (replay protection: the database "
    "is unavailable); the call was not evaluated, retry with a new token"
)


def build_verifier(
    settings: Settings,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
    audit: AuditWriter | None = None,
) -> JwtVerifier | None:
    """The JWT verifier, or None when auth is off (development only). With `audit` and the
    database replay cache chosen, jtis are remembered in the audit database."""
    production = settings.env == "production"
    if not settings.auth_enabled:
        if production:
            raise ConfigError(
                "CDS_ENV=production requires client authentication: unset CDS_AUTH or set it "
                "to true, and list the trusted CDS clients in CDS_ISSUERS_FILE"
            )
        return None
    issuers = load_issuers(settings)
    if not issuers:
        raise ConfigError(
            "client authentication is on but no CDS client is trusted: list the issuers in "
            "CDS_ISSUERS_FILE or CDS_ISSUERS (see README, Security)"
        )
    if production:
        refuse_cleartext_keys(issuers.values())
    base_url = settings.public_base_url
    if base_url is None:
        if production:
            raise ConfigError(
                "CDS_ENV=production requires CDS_PUBLIC_BASE_URL, the URL clients call this "
                "service at (each token's aud must match it)"
            )
        base_url = f"http://{settings.host}:{settings.port}"
    return JwtVerifier(issuers, base_url, JwksCache(jwks_transport), replay_cache(settings, audit))


def replay_cache(settings: Settings, audit: AuditWriter | None) -> ReplayCache:
    """Shared through the audit database when `DATABASE_URL` is set (several workers or
    replicas), per process otherwise (`CDS_REPLAY_CACHE` overrides)."""
    if settings.replay_cache_backend == "memory" or audit is None:
        return MemoryReplayCache()
    return DatabaseReplayCache(audit.store.url, audit.ready_store)


def refuse_cleartext_keys(issuers: Iterable[Issuer]) -> None:
    """A JWK Set fetched over http could be swapped on the way: anyone could then sign tokens."""
    for issuer in issuers:
        for url in (issuer.jwks_url, issuer.jku_list_url, *issuer.jku):
            if url is not None and not secure_url(url):
                setting = {issuer.jwks_url: "jwks_url", issuer.jku_list_url: "jku_list_url"}.get(
                    url, "jku"
                )
                raise ConfigError(
                    f"CDS_ENV=production requires https:// for issuer {issuer.iss!r} {setting} "
                    f"{url} (CDS_ISSUERS / CDS_ISSUERS_FILE)"
                )


def harden(
    app: FastAPI,
    settings: Settings,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
    audit: AuditWriter | None = None,
) -> None:
    app.state.verifier = build_verifier(settings, jwks_transport, audit)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, __: Unauthorized) -> JSONResponse:
        return unauthorized_response()

    @app.exception_handler(ReplayCheckUnavailable)
    async def _replay_unchecked(_: Request, __: ReplayCheckUnavailable) -> JSONResponse:
        # The token may well be good: a 503 (try again), not a 401 (fix your credentials).
        return JSONResponse(
            operation_outcome(REPLAY_UNCHECKED, "transient"),
            status_code=503,
            media_type="application/fhir+json",
            headers={"Retry-After": "1"},
        )

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout)
    # Added last, so outermost: error responses from the limits carry CORS headers too.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        max_age=600,
    )
