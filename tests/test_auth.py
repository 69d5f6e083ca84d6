"""CDS client JWT authentication through the HTTP API, with real keys and signed tokens."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Request
from fastapi.testclient import TestClient

from cds_service.api.auth import ClientAuth
from cds_service.api.jwks import JwksCache, JwksUnavailable
from cds_service.api.replay import MemoryReplayCache, ReplayCheckUnavailable
from cds_service.policy_store import Knowledge
from cds_service.scenarios import build_request, find_scenario
from cds_service.settings import Settings
from tests.clients import (
    BASE_URL,
    EC_KEY,
    JKU,
    RSA_KEY,
    JwksServer,
    auth_client,
    jwk_set,
    signed,
    unsigned,
)

SIGN = "/cds-services/dli-hpc-order-sign"
BODY = build_request(find_scenario("relapsed-aml-allo-mac").bundle(), "order-sign")
EVIL_JKU = "https://attacker.example/jwks.json"
PUBLIC_PEM = EC_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


@pytest.fixture
def jwks() -> JwksServer:
    return JwksServer({JKU: jwk_set(("ec-1", EC_KEY), ("rsa-1", RSA_KEY))})


@pytest.fixture
def secured(knowledge: Knowledge, jwks: JwksServer) -> TestClient:
    return auth_client(knowledge, jwks)


def call(client: TestClient, token: str | None, path: str = SIGN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if path == SIGN:
        return client.post(path, json=BODY, headers=headers)
    return client.get(path, headers=headers)


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_valid_token_is_accepted(secured: TestClient, jwks: JwksServer, alg: str) -> None:
    response = call(secured, signed(alg))
    assert response.status_code == 200, response.text
    assert response.json()["cards"]
    assert jwks.requested == [JKU]
    assert (
        call(secured, signed(alg, aud=BASE_URL + "/cds-services"), "/cds-services").status_code
        == 200
    )


def test_jwks_url_is_used_without_jku_and_the_set_is_cached(
    secured: TestClient, jwks: JwksServer
) -> None:
    for _ in range(3):
        assert call(secured, signed(header={"jku": None})).status_code == 200
    assert jwks.requested == [JKU]


OTHER_EC_KEY = ec.generate_private_key(ec.SECP384R1())
REJECTED: list[tuple[str, Callable[[], str | None]]] = [
    ("missing token", lambda: None),
    ("not a JWT", lambda: "not-a-jwt"),
    ("wrong signature", lambda: signed(key=OTHER_EC_KEY)),
    ("alg none", lambda: unsigned("none")),
    ("HS256 with a shared secret", lambda: unsigned("HS256", b"s" * 64)),
    ("HS384 keyed with the client's public key", lambda: unsigned("HS384", PUBLIC_PEM)),
    ("ES256 not allowed for the issuer", lambda: signed("ES256", key=ec.generate_private_key(ec.SECP256R1()))),
    ("unknown iss", lambda: signed(iss="https://other-ehr.example.org")),
    ("non-allowlisted jku", lambda: signed(header={"jku": EVIL_JKU})),
    ("wrong aud: another service", lambda: signed(aud=BASE_URL + "/cds-services/dli-hpc-order-select")),
    ("wrong aud: another host", lambda: signed(aud="https://evil.example.org/cds-services/dli-hpc-order-sign")),
    ("expired", lambda: signed(iat=int(time.time()) - 600, exp=int(time.time()) - 120)),
    ("future iat", lambda: signed(iat=int(time.time()) + 600, exp=int(time.time()) + 900)),
    ("lifetime over an hour", lambda: signed(exp=int(time.time()) + 7200)),
    ("no jti", lambda: signed(jti=None)),
    ("no exp", lambda: signed(exp=None)),
    ("typ not JWT", lambda: signed(header={"typ": "at+jwt"})),
    ("unknown kid", lambda: signed(kid="ec-9")),
    ("RS384 key under an ES384 kid", lambda: signed("RS384", kid="ec-1")),
]  # fmt: skip


@pytest.mark.parametrize(("why", "make_token"), REJECTED, ids=[r[0] for r in REJECTED])
def test_bad_tokens_get_401_without_detail(
    secured: TestClient,
    jwks: JwksServer,
    caplog: pytest.LogCaptureFixture,
    why: str,
    make_token: Callable[[], str | None],
) -> None:
    token = make_token()
    with caplog.at_level(logging.WARNING, "cds_service.auth"):
        response = call(secured, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    # One fixed body whatever the reason: nothing tells an attacker which check failed.
    assert response.json() == {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "security", "diagnostics": "authentication required"}
        ],
    }
    assert [r.getMessage() for r in caplog.records] == ["client rejected"]
    assert caplog.records[0].fields["reason"]  # type: ignore[attr-defined]
    assert not token or token not in caplog.text
    assert EVIL_JKU not in jwks.requested  # never fetched, whatever the token says
    assert set(jwks.requested) <= {JKU}


def test_replayed_jti_is_refused(secured: TestClient) -> None:
    token = signed()
    assert call(secured, token).status_code == 200
    assert call(secured, token).status_code == 401
    assert call(secured, signed()).status_code == 200  # a fresh jti is fine


def test_discovery_needs_a_token_and_health_does_not(secured: TestClient) -> None:
    assert call(secured, None, "/cds-services").status_code == 401
    assert call(secured, signed(), "/cds-services").status_code == 401  # aud names the service
    assert secured.get("/healthz").status_code == 200


def test_verified_client_is_available_to_later_code(knowledge: Knowledge, jwks: JwksServer) -> None:
    client = auth_client(knowledge, jwks)

    @client.app.get("/whoami")  # type: ignore[attr-defined,untyped-decorator]
    async def whoami(identity: ClientAuth, request: Request) -> dict[str, Any]:
        assert identity is not None
        return {"iss": identity.issuer, "state": request.state.client.issuer}

    token = signed(aud=BASE_URL + "/whoami")
    response = client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"iss": "https://ehr.example.org", "state": "https://ehr.example.org"}


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),  # development is the default mode
        ({"CDS_ENV": "production"}, True),
        ({"CDS_AUTH": "true"}, True),
        ({"CDS_ENV": "production", "CDS_AUTH": "false"}, False),  # refused at start-up
    ],
)
def test_auth_is_on_by_default_outside_development(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], enabled: bool
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().auth_enabled is enabled


def test_development_service_needs_no_token(client: TestClient) -> None:
    assert client.get("/cds-services").status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_jwks_refetched_on_unknown_kid_at_most_every_30_seconds() -> None:
    server = JwksServer({JKU: jwk_set(("old", EC_KEY))})
    clock = Clock()
    cache = JwksCache(server, clock=clock)
    assert asyncio.run(cache.key(JKU, "old")) is not None
    server.sets[JKU] = jwk_set(("new", RSA_KEY))  # the client rotates its key
    assert asyncio.run(cache.key(JKU, "new")) is None  # just fetched: no refetch storm
    clock.now += 31
    assert asyncio.run(cache.key(JKU, "new")) is not None
    assert server.requested == [JKU, JKU]


@pytest.mark.parametrize(
    ("why", "response"),
    [
        ("HTTP error", lambda _: httpx.Response(500)),
        ("redirect not followed", lambda _: httpx.Response(302, headers={"Location": EVIL_JKU})),
        ("too large", lambda _: httpx.Response(200, content=b" " * 300_000)),
        ("not JSON", lambda _: httpx.Response(200, content=b"<html>")),
        ("private keys only", lambda _: httpx.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}]})),
        ("timeout", lambda request: (_ for _ in ()).throw(httpx.ConnectTimeout("slow", request=request))),
    ],
)  # fmt: skip
def test_unusable_jwks_is_refused(
    why: str, response: Callable[[httpx.Request], httpx.Response]
) -> None:
    cache = JwksCache(httpx.MockTransport(response))
    with pytest.raises(JwksUnavailable):
        asyncio.run(cache.key(JKU, "ec-1"))


def test_replay_cache_forgets_expired_entries_and_is_bounded() -> None:
    clock = Clock()
    cache = MemoryReplayCache(max_entries=2, clock=clock)

    def first_use(issuer: str, jti: str, expires: float) -> bool:
        return asyncio.run(cache.first_use(issuer, jti, expires))

    assert first_use("iss", "a", expires=1010)
    assert not first_use("iss", "a", expires=1010)
    assert first_use("other-iss", "a", expires=1010)  # jti is per issuer
    with pytest.raises(ReplayCheckUnavailable, match="full"):
        first_use("iss", "b", expires=1010)
    clock.now = 1011
    assert first_use("iss", "b", expires=1100)  # the expired ones made room


def test_a_wrong_aud_logs_the_expected_audience_not_the_token(
    secured: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a proxy the commonest 401 is aud: the log says what was expected and what came."""
    wrong = "https://proxy.example.org/cds/dli-hpc-order-sign"
    token = signed(aud=wrong)
    with caplog.at_level(logging.WARNING, "cds_service.auth"):
        assert call(secured, token).status_code == 401
    reason = caplog.records[0].fields["reason"]  # type: ignore[attr-defined]
    assert wrong in reason and BASE_URL + "/cds-services/dli-hpc-order-sign" in reason
    assert token not in caplog.text
