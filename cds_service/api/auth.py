"""CDS client authentication: the signed JWT every call carries (CDS Hooks 2.0 §trusting-cds-clients,
cds-hooks.org best practices "JWT").

`authenticate` is the one FastAPI dependency; apply it with `dependencies=[RequireClient]` or take
`client: ClientAuth` as a parameter. It leaves the verified client in `request.state.client`
(None when auth is off). Every failure is the same 401 body; the reason goes to the log only,
never the token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from cds_service.api.errors import operation_outcome
from cds_service.api.issuers import Issuer
from cds_service.api.jwks import JwksCache, JwksUnavailable
from cds_service.api.replay import MemoryReplayCache, ReplayCache, ReplayCheckUnavailable

log = logging.getLogger("cds_service.auth")

LEEWAY_SECONDS = 60  # clock skew tolerated on exp / iat
MAX_LIFETIME_SECONDS = 3600  # exp - iat; bounds how long a jti must be remembered
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
REPLAYED = "jti replayed"
_KEY_TYPE = {"ES": "EC", "RS": "RSA", "PS": "RSA"}  # alg family -> JWK kty


@dataclass(frozen=True)
class ClientIdentity:
    issuer: str
    kid: str
    jti: str


class AuthFailed(Exception):
    """Why a token was refused; for the log, never for the response."""


class JwtVerifier:
    def __init__(
        self,
        issuers: Mapping[str, Issuer],
        public_base_url: str,
        jwks: JwksCache,
        replay: ReplayCache | None = None,
    ) -> None:
        self.issuers = issuers
        self.public_base_url = public_base_url.rstrip("/")
        self._jwks = jwks
        self.replay: ReplayCache = replay or MemoryReplayCache()

    async def verify(self, token: str, audience: str) -> ClientIdentity:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise AuthFailed("malformed token") from error
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthFailed(f"iss {str(iss)[:100]!r} not on the allowlist")
        alg, kid, jku = header.get("alg"), header.get("kid"), header.get("jku")
        if alg not in issuer.algorithms:
            raise AuthFailed(f"alg {str(alg)[:20]!r} not allowed for this issuer")
        if str(header.get("typ", "")).upper() != "JWT":
            raise AuthFailed("typ is not JWT")
        if not isinstance(kid, str) or not kid:
            raise AuthFailed("no kid")
        if jku is not None and not await self._jku_allowed(issuer, jku):
            raise AuthFailed("jku not on the issuer's allowlist")  # and never fetched
        if jku is None and issuer.jku_list_url and not (issuer.jwks_url or issuer.jwks):
            raise AuthFailed("no jku: this issuer's keys are named by jku only")
        key = await self._key(issuer, kid, jku)
        if key is None:
            raise AuthFailed("kid not in the issuer's JWK Set")
        if key.key_type != _KEY_TYPE[alg[:2]]:
            raise AuthFailed(f"{alg} needs an {_KEY_TYPE[alg[:2]]} key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                # the URL invoked, or one the issuer's EHR is known to send (Epic: as typed)
                audience=[audience, *issuer.audiences],
                issuer=issuer.iss,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "verify_nbf": True},
            )
        except jwt.InvalidAudienceError as error:
            # The commonest integration mistake (a proxy or a path in front of the service): the
            # log says what aud was expected and what came (a URL, not a secret; never the token).
            given = str(unverified.get("aud"))[:200]
            raise AuthFailed(f"aud {given!r} is not the URL invoked, {audience!r}") from error
        except (jwt.PyJWTError, TypeError, ValueError) as error:  # PyJWT raises all three
            raise AuthFailed(type(error).__name__) from error  # e.g. ExpiredSignatureError
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise AuthFailed("jti is not a string")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_LIFETIME_SECONDS:
            raise AuthFailed("token lifetime exceeds the maximum")
        # Last, so only a token that passed every other check is remembered (and an attacker's
        # garbage never reaches the database).
        if not await self.replay.first_use(issuer.iss, jti, int(claims["exp"]) + LEEWAY_SECONDS):
            raise AuthFailed(REPLAYED)
        return ClientIdentity(issuer.iss, kid, jti)

    async def _jku_allowed(self, issuer: Issuer, jku: object) -> bool:
        """On the issuer's own jku list, or on the list it publishes (Oracle Health)."""
        if not isinstance(jku, str):
            return False
        if jku in issuer.jku:
            return True
        if issuer.jku_list_url is None:
            return False
        try:
            return await self._jwks.listed(issuer.jku_list_url, jku)
        except JwksUnavailable as error:
            raise AuthFailed(f"published jku list unavailable: {error}") from error

    async def _key(self, issuer: Issuer, kid: str, jku: object) -> jwt.PyJWK | None:
        url = jku if isinstance(jku, str) else issuer.jwks_url
        if url is None:
            return issuer.inline_keys.get(kid)
        try:
            return await self._jwks.key(url, kid)
        except JwksUnavailable as error:
            raise AuthFailed(f"JWK Set unavailable: {error}") from error


class Unauthorized(Exception):
    """Raised by the dependency; answered with the one fixed 401 body."""


def unauthorized_response() -> JSONResponse:
    return JSONResponse(
        operation_outcome("authentication required", "security"),
        status_code=401,
        media_type="application/fhir+json",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authenticate(request: Request) -> ClientIdentity | None:
    verifier: JwtVerifier | None = request.app.state.verifier
    identity = None
    if verifier is not None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthFailed("no bearer token")
            # aud: the exact URL invoked, as the client sees it (the public base URL), or one of
            # the issuer's `audiences`.
            identity = await verifier.verify(
                token.strip(), verifier.public_base_url + request.url.path
            )
        except AuthFailed as failure:
            _count_token(request, "replayed" if str(failure) == REPLAYED else "rejected")
            log.warning(
                "client rejected",
                extra={"fields": {"reason": str(failure), "path": request.url.path}},
            )
            raise Unauthorized from failure
        except ReplayCheckUnavailable as failure:  # answered 503 (security.py): fail closed
            _count_token(request, "unchecked")
            log.error(
                "client token not checked for replay, call refused",
                extra={"fields": {"reason": str(failure), "path": request.url.path}},
            )
            raise
        _count_token(request, "accepted")
    request.state.client = identity
    return identity


def _count_token(request: Request, outcome: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)  # api/metrics.py
    if metrics is not None:
        metrics.tokens.labels(outcome).inc()


ClientAuth = Annotated[ClientIdentity | None, Depends(authenticate)]
RequireClient = Depends(authenticate)


def client_issuer(request: Request) -> str | None:
    """The verified client's `iss` for the audit log; None when authentication is off."""
    client = getattr(request.state, "client", None)
    return client.issuer if isinstance(client, ClientIdentity) else None
