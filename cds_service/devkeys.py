"""A local development CDS client: an ES384 key pair, the issuer entry that trusts it, and the
signed JWT such a client sends (CDS Hooks 2.0 §trusting-cds-clients). For `cds-service dev-key`
and `cds-service fire --sign`; the `kid` is the key's RFC 7638 thumbprint, so the private key
file is all `fire` needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

DEV_ISSUER = "https://dev-client.dli-hpc-cds.invalid"
ALGORITHM = "ES384"


def public_jwk(private_key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
    # RFC 7638 thumbprint: SHA-256 of the required members, sorted, without whitespace.
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=")
    return jwk | {"kid": kid.decode(), "use": "sig", "alg": ALGORITHM}


def generate(folder: Path, issuer: str = DEV_ISSUER) -> tuple[Path, Path]:
    """Write `dev-client-key.pem` (private, mode 600) and `dev-issuers.json` (trusts its public
    key inline) into `folder`; return both paths."""
    private_key = ec.generate_private_key(ec.SECP384R1())
    folder.mkdir(parents=True, exist_ok=True)
    key_path = folder / "dev-client-key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    issuers = {
        "issuers": [
            {"iss": issuer, "jwks": {"keys": [public_jwk(private_key)]}, "algorithms": [ALGORITHM]}
        ]
    }
    issuers_path = folder / "dev-issuers.json"
    issuers_path.write_text(json.dumps(issuers, indent=2) + "\n", encoding="utf-8")
    return key_path, issuers_path


def sign(key_path: Path, audience: str, issuer: str = DEV_ISSUER, lifetime: int = 300) -> str:
    """A fresh CDS client JWT for one call to `audience` (the exact URL invoked)."""
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC private key (use `cds-service dev-key`)")
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_hex(32),
    }
    headers = {"kid": public_jwk(private_key)["kid"], "typ": "JWT"}
    return jwt.encode(claims, private_key, algorithm=ALGORITHM, headers=headers)
