"""Production refuses unsafe settings (each refusal names its setting); the schema is off and
`/healthz` tells the public only ok / degraded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from cds_service.api.app import create_app
from cds_service.api.issuers import ConfigError
from cds_service.cli import app as cli
from cds_service.policy_store import Knowledge
from cds_service.settings import Settings
from tests.clients import BASE_URL, EC_KEY, ISS, JKU, JwksServer, jwk_set, signed

ISSUER = {"iss": ISS, "jwks_url": JKU, "jku": [JKU], "algorithms": ["ES384"]}
SAFE: dict[str, Any] = {
    "CDS_ENV": "production",
    "CDS_PUBLIC_BASE_URL": BASE_URL,
    "CDS_ISSUERS": json.dumps({"issuers": [ISSUER]}),
}
JWKS = JwksServer({JKU: jwk_set(("ec-1", EC_KEY))})


def production_app(knowledge: Knowledge, **env: Any) -> TestClient:
    return TestClient(create_app(Settings(**(SAFE | env)), knowledge, jwks_transport=JWKS))


SETTING_REFUSALS = [
    ({"CDS_PUBLIC_BASE_URL": "http://cds.example.org"}, "CDS_PUBLIC_BASE_URL"),
    ({"CDS_FHIR_ALLOWED_SERVERS": "https://ehr.example.org/fhir,http://ehr.example.org/fhir"}, "CDS_FHIR_ALLOWED_SERVERS"),
    ({"CDS_CORS_ORIGINS": "https://app.example.org,*"}, "CDS_CORS_ORIGINS"),
    ({"CDS_CORS_ORIGINS": "https://app.example.org,null"}, "CDS_CORS_ORIGINS"),  # issue 24
    ({"CDS_SANDBOX": "true"}, "CDS_SANDBOX"),
]  # fmt: skip


@pytest.mark.parametrize(("env", "setting"), SETTING_REFUSALS)
def test_unsafe_production_settings_are_refused(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ValidationError, match=setting):
        Settings(**(SAFE | env))
    result = CliRunner().invoke(cli, ["serve"], env=SAFE | env)
    assert result.exit_code == 2
    assert "Not starting:" in result.output and setting in result.output


@pytest.mark.parametrize("where", ["jwks_url", "jku"])
def test_issuer_keys_over_http_are_refused_in_production(knowledge: Knowledge, where: str) -> None:
    issuer = ISSUER | {where: "http://ehr.example.org/jwks" if where == "jwks_url" else ["http://ehr.example.org/jwks"]}  # fmt: skip
    with pytest.raises(ConfigError, match=f"{where} http://ehr.example.org/jwks"):
        production_app(knowledge, CDS_ISSUERS=json.dumps({"issuers": [issuer]}))


def test_loopback_http_is_allowed_for_tests(knowledge: Knowledge) -> None:
    issuer = ISSUER | {"jwks_url": "http://127.0.0.1:9/jwks", "jku": ["http://localhost:9/j"]}
    client = production_app(
        knowledge,
        CDS_FHIR_ALLOWED_SERVERS="http://127.0.0.1:8080/fhir",
        CDS_ISSUERS=json.dumps({"issuers": [issuer]}),
    )
    assert client.get("/healthz").status_code == 200


def test_development_keeps_its_conveniences() -> None:
    settings = Settings(
        CDS_PUBLIC_BASE_URL="http://cds.test", CDS_CORS_ORIGINS="*", CDS_SANDBOX=True
    )
    assert settings.sandbox_enabled and settings.cors_origins == ["*"]


def test_the_schema_and_docs_are_not_served_in_production(knowledge: Knowledge) -> None:
    client = production_app(knowledge)
    assert client.get("/openapi.json").status_code == 404
    assert client.get("/docs").status_code == 404
    assert TestClient(create_app(Settings(), knowledge)).get("/openapi.json").status_code == 200


def test_public_health_is_status_only_and_details_need_a_client_token(
    knowledge: Knowledge,
) -> None:
    client = production_app(knowledge)
    assert client.app.state.audit.flush()  # type: ignore[attr-defined]  # migrated: "ok"
    assert client.get("/healthz").json() == {"status": "ok"}
    forged = {"Authorization": "Bearer not-a-token"}
    assert client.get("/healthz", headers=forged).json() == {"status": "ok"}
    token = signed(aud=BASE_URL + "/healthz")
    details = client.get("/healthz", headers={"Authorization": f"Bearer {token}"}).json()
    assert details["status"] == "ok" and details["audit"]["backend"] == "sqlite"
    assert details["policies"]
    client.app.state.audit.close()  # type: ignore[attr-defined]
