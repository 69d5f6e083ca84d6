"""Start-up refusals, the sample client configurations, CORS and the input limits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message
from typer.testing import CliRunner

from cds_service.api.app import create_app
from cds_service.api.issuers import ConfigError, load_issuers
from cds_service.api.limits import MAX_JSON_DEPTH, MAX_JSON_ITEMS, BodyLimit
from cds_service.cli import app as cli
from cds_service.policy_store import Knowledge
from cds_service.scenarios import build_request, find_scenario
from cds_service.settings import Settings
from tests.clients import EC_KEY, JwksServer, auth_client, jwk_set, signed

SIGN = "/cds-services/dli-hpc-order-sign"
ISSUERS_DIR = Path(__file__).parent.parent / "issuers"
SANDBOX = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
ONE_ISSUER = json.dumps({"issuers": [{"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks"}]})  # fmt: skip


def request_body() -> dict[str, Any]:
    return build_request(find_scenario("relapsed-aml-allo-mac").bundle(), "order-sign")


STARTUP_REFUSALS = [
    ({"CDS_ENV": "production", "CDS_AUTH": "false"}, "CDS_ENV=production requires client authentication"),
    ({"CDS_ENV": "production"}, "no CDS client is trusted"),
    ({"CDS_ENV": "production", "CDS_ISSUERS": ONE_ISSUER}, "requires CDS_PUBLIC_BASE_URL"),
    ({"CDS_AUTH": "true"}, "no CDS client is trusted"),
    ({"CDS_AUTH": "true", "CDS_ISSUERS_FILE": "/nonexistent/issuers.yaml"}, "cannot be read"),
    ({"CDS_AUTH": "true", "CDS_ISSUERS": '{"issuers": [{"iss": "x", "jwks_url": "https://x/j", "algorithms": ["HS256"]}]}'}, "algorithms must be"),
    ({"CDS_AUTH": "true", "CDS_ISSUERS": '{"issuers": [{"iss": "x"}]}'}, "needs jwks_url, jku, jku_list_url or jwks"),
    ({"CDS_AUTH": "true", "CDS_ISSUERS": '{"issuers": [{"iss": "x", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}]}}]}'}, "no public signing key"),
    ({"CDS_AUTH": "true", "CDS_ISSUERS": '{"issuers": [{"iss": "x", "jku": ["file:///etc/passwd"]}]}'}, "http(s) URLs"),
]  # fmt: skip


@pytest.mark.parametrize(("env", "message"), STARTUP_REFUSALS)
def test_service_refuses_to_start_without_trust(
    monkeypatch: pytest.MonkeyPatch, knowledge: Knowledge, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_app(Settings(), knowledge)


def test_serve_prints_why_it_will_not_start() -> None:
    result = CliRunner().invoke(cli, ["serve"], env={"CDS_ENV": "production"})
    assert result.exit_code == 2
    assert "Not starting: client authentication is on but no CDS client is trusted" in result.output


def test_production_starts_with_issuers_and_a_public_url(
    monkeypatch: pytest.MonkeyPatch, knowledge: Knowledge
) -> None:
    monkeypatch.setenv("CDS_ENV", "production")
    monkeypatch.setenv("CDS_ISSUERS", ONE_ISSUER)
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "https://cds.example.org")
    response = TestClient(create_app(Settings(), knowledge)).get("/cds-services")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("file", "iss", "algorithms"),
    [
        ("cds-hooks-sandbox.yaml", SANDBOX, ("ES384",)),
        ("inferno-crd.yaml", "https://inferno.healthit.gov/suites/custom/crd_server", ("ES384", "RS384")),
    ],
)  # fmt: skip
def test_sample_client_configurations_load(
    file: str, iss: str, algorithms: tuple[str, ...]
) -> None:
    issuers = load_issuers(Settings(CDS_ISSUERS_FILE=ISSUERS_DIR / file))
    assert list(issuers) == [iss]
    assert issuers[iss].algorithms == algorithms
    assert issuers[iss].jku == (issuers[iss].jwks_url,)


def test_sandbox_shaped_token_is_accepted_with_the_sample_configuration(
    knowledge: Knowledge,
) -> None:
    jwks = JwksServer({SANDBOX_JKU: jwk_set(("sandbox-1", EC_KEY))})
    settings = Settings(CDS_AUTH=True, CDS_ISSUERS_FILE=ISSUERS_DIR / "cds-hooks-sandbox.yaml",
                        CDS_PUBLIC_BASE_URL="https://cds.example.org")  # fmt: skip
    client = TestClient(create_app(settings, knowledge, jwks_transport=jwks))
    token = signed(iss=SANDBOX, kid="sandbox-1", header={"jku": SANDBOX_JKU})
    response = client.post(SIGN, json=request_body(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert jwks.requested == [SANDBOX_JKU]


ORIGIN = "https://sandbox.cds-hooks.org"


@pytest.fixture
def browser_client(knowledge: Knowledge) -> TestClient:
    return auth_client(
        knowledge, JwksServer({}), CDS_CORS_ORIGINS=f"{ORIGIN}, https://other.example"
    )


def preflight(client: TestClient, origin: str) -> Any:
    return client.options(SIGN, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "authorization, content-type"})  # fmt: skip


def test_cors_preflight_allows_listed_origins_without_a_token(browser_client: TestClient) -> None:
    response = preflight(browser_client, ORIGIN)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]


def test_cors_refuses_other_origins(browser_client: TestClient) -> None:
    response = preflight(browser_client, "https://evil.example")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    response = browser_client.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_headers_on_errors_so_the_browser_can_read_them(browser_client: TestClient) -> None:
    response = browser_client.post(SIGN, json=request_body(), headers={"Origin": ORIGIN})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_no_cors_unless_configured(client: TestClient) -> None:
    assert "access-control-allow-origin" not in preflight(client, ORIGIN).headers
    assert (
        "access-control-allow-origin"
        not in client.get("/cds-services", headers={"Origin": ORIGIN}).headers
    )


def assert_outcome(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    assert fragment in response.json()["issue"][0]["diagnostics"]


@pytest.fixture
def small_limit_client(knowledge: Knowledge) -> TestClient:
    return TestClient(create_app(Settings(CDS_MAX_BODY_BYTES=50_000), knowledge))


def test_body_over_the_limit_is_413(small_limit_client: TestClient) -> None:
    body = request_body()
    body["extension"] = {"padding": "x" * 60_000}
    assert_outcome(small_limit_client.post(SIGN, json=body), 413, "larger than 50000 bytes")


def test_streamed_body_over_the_limit_is_413(small_limit_client: TestClient) -> None:
    chunks = (b" " * 10_000 for _ in range(10))  # no Content-Length: counted as it arrives
    response = small_limit_client.post(
        SIGN, content=chunks, headers={"content-type": "application/json"}
    )
    assert_outcome(response, 413, "larger than 50000 bytes")


def test_fixture_sized_requests_fit_the_default_limit(client: TestClient) -> None:
    assert client.post(SIGN, json=request_body()).status_code == 200


def test_slow_body_is_408() -> None:
    reached: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def never_finishes() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": SIGN, "headers": []}
    asyncio.run(BodyLimit(app, max_bytes=1000, timeout=0.05)(scope, never_finishes, send))
    assert sent[0]["status"] == 408 and not reached
    assert b"not received within 0.05 seconds" in sent[1]["body"]


def nested(depth: int) -> bytes:
    return b'{"hook": "order-sign", "extension": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("why", "body", "status", "message"),
    [
        ("nesting over the limit", nested(MAX_JSON_DEPTH), 400, f"nests deeper than {MAX_JSON_DEPTH}"),
        ("nesting past the parser's recursion limit", nested(100_000), 400, "nests deeper"),
        ("an array over the limit", b'{"extension": [' + b"0," * MAX_JSON_ITEMS + b"0]}", 413, "at most 20000"),
        ("an integer of 5000 digits", b'{"hook": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    ],
)  # fmt: skip
def test_json_shape_limits(
    client: TestClient, why: str, body: bytes, status: int, message: str
) -> None:
    response = client.post(SIGN, content=body, headers={"content-type": "application/json"})
    assert_outcome(response, status, message)


def test_prefetch_with_too_many_entries_is_413(client: TestClient) -> None:
    body = request_body()
    body["prefetch"]["observations"]["entry"] = [{"resource": {"resourceType": "Observation"}}] * (
        MAX_JSON_ITEMS + 1
    )
    assert_outcome(client.post(SIGN, json=body), 413, "entries; at most")


def test_a_deeply_nested_prefetch_resource_is_unreadable_not_a_500(client: TestClient) -> None:
    """Prefetched resources are not walked by the shape check; fhir.resources' RecursionError on
    a deeply nested one makes that resource unreadable and its criteria unknown."""
    body = request_body()
    chimerism = next(
        e["resource"]
        for e in body["prefetch"]["observations"]["entry"]
        if e["resource"]["code"]["coding"][0]["code"] == "102113-8"
    )
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(300):  # about 600 JSON levels: past Python's recursion limit when validated
        extension = {"url": "http://example.org/x", "extension": [extension]}
    chimerism["extension"] = [extension]
    response = client.post("/cds-services/dli-hpc-order-sign", json=body)
    assert response.status_code == 200, response.text
    criteria = {
        c["id"]: c["status"]
        for card in response.json()["cards"]
        for e in card["extension"]["dli-hpc-cds.evaluations"]
        for c in e["criteria"]
    }
    assert criteria["molina-dli-mixed-chimerism"] == "unknown"
    assert criteria["molina-dli-relapsed-refractory-persistent"] == "met"
