"""Test CDS clients: generated ES384 / RS384 keys, their JWK Set served on an injected httpx
transport that records every URL requested, and a signer for (valid or deliberately bad) JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds_service.api.app import create_app
from cds_service.policy_store import Knowledge
from cds_service.settings import Settings

BASE_URL = "https://cds.example.org"
ISS = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEYS: dict[str, tuple[str, Any]] = {"ES384": ("ec-1", EC_KEY), "RS384": ("rsa-1", RSA_KEY)}


def jwk_set(*keys: tuple[str, Any]) -> dict[str, Any]:
    found = []
    for kid, key in keys:
        algorithm = ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
        found.append(json.loads(algorithm.to_jwk(key.public_key())) | {"kid": kid, "use": "sig"})
    return {"keys": found}


class JwksServer(httpx.MockTransport):
    """Serves JWK Sets by URL (404 otherwise) and records every request made."""

    def __init__(self, sets: dict[str, dict[str, Any]]) -> None:
        self.sets = sets
        self.requested: list[str] = []
        super().__init__(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requested.append(str(request.url))
        found = self.sets.get(str(request.url))
        return httpx.Response(200, json=found) if found else httpx.Response(404)


def signed(
    alg: str = "ES384",
    *,
    key: Any = None,
    kid: str | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A CDS client JWT for the sign service; keyword arguments override claims (None drops)."""
    default_kid, default_key = KEYS.get(alg, ("ec-1", None))
    now = int(time.time())
    body = {"iss": ISS, "aud": BASE_URL + "/cds-services/dli-hpc-order-sign", "iat": now,
            "exp": now + 300, "jti": secrets.token_hex(32)} | claims  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    headers = {"typ": "JWT", "kid": kid or default_kid, "jku": JKU} | (header or {})
    return jwt.encode(body, key or default_key, algorithm=alg, headers=headers)


def unsigned(alg: str, secret: bytes = b"", **claims: Any) -> str:
    """A token with `alg: none` or an HMAC alg, built by hand: JOSE libraries refuse to."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    template = jwt.decode(signed(**claims), options={"verify_signature": False})
    header = {"alg": alg, "typ": "JWT", "kid": "ec-1", "jku": JKU}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(template).encode())}"
    digest = getattr(hashlib, "sha" + alg[2:], None)
    signature = hmac.new(secret, signing_input.encode(), digest).digest() if digest else b""
    return f"{signing_input}.{b64(signature)}"


def auth_client(knowledge: Knowledge, jwks: JwksServer, **env: Any) -> TestClient:
    issuers = {"issuers": [{"iss": ISS, "jwks_url": JKU, "jku": [JKU], "algorithms": ["ES384", "RS384"]}]}  # fmt: skip
    settings = Settings(
        CDS_AUTH=True, CDS_PUBLIC_BASE_URL=BASE_URL, CDS_ISSUERS=json.dumps(issuers), **env
    )
    return TestClient(create_app(settings, knowledge, jwks_transport=jwks))
