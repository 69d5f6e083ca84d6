"""EHR trust presets (issuers/*.yaml): each preset file, loaded as an operator would, accepts a
token minted in that vendor's documented shape and refuses the near misses.

Shapes (shared reference crd-dtr-ehr-conventions.md §3): Epic signs RS384, names a per-instance
key URL in `jku`, sets `iss` to the health system's FHIR endpoint, `aud` to whatever the health
system typed, and adds `sub` and an `nbf` 5 minutes before `iat`. Oracle Health signs as
https://cds-hooks.cerner.com and publishes the allowed `jku` values at
https://authorization.cerner.com/jwk. The CDS Hooks sandbox signs ES384 with its published key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from cds_service.api.app import create_app
from cds_service.api.issuers import ConfigError
from cds_service.api.jwks import listed_urls
from cds_service.api.security import build_verifier
from cds_service.policy_store import Knowledge
from cds_service.scenarios import build_request, find_scenario
from cds_service.settings import Settings
from tests.clients import KEYS, JwksServer, jwk_set, signed

ISSUERS = Path(__file__).resolve().parents[1] / "issuers"
SIGN = "/cds-services/dli-hpc-order-sign"
REQUEST = build_request(find_scenario("relapsed-aml-allo-mac").bundle())


def preset(name: str) -> dict[str, Any]:
    issuer: dict[str, Any] = yaml.safe_load((ISSUERS / name).read_text())["issuers"][0]
    return issuer


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    return tmp_path


def service(knowledge: Knowledge, name: str, base_url: str, jwks: JwksServer) -> TestClient:
    settings = Settings(
        CDS_AUTH=True, CDS_PUBLIC_BASE_URL=base_url, CDS_ISSUERS_FILE=str(ISSUERS / name)
    )
    return TestClient(create_app(settings, knowledge, jwks_transport=jwks))


@pytest.fixture
def closing() -> Iterator[list[TestClient]]:
    clients: list[TestClient] = []
    yield clients
    for client in clients:
        client.app.state.audit.close()  # type: ignore[attr-defined]


def call(client: TestClient, token: str) -> int:
    return client.post(SIGN, json=REQUEST, headers={"Authorization": f"Bearer {token}"}).status_code


# --- Epic ---------------------------------------------------------------------------------------
EPIC = preset("epic.yaml")
EPIC_BASE = "https://cds.example-payer.org"


def epic_token(aud: str, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": EPIC["iss"], "aud": aud, "sub": "dli-hpc-cds-client-id", "nbf": now - 300,
              "iat": now, "exp": now + 300} | changes  # fmt: skip
    return signed("RS384", header={"jku": EPIC["jku"][0]}, **claims)


def test_epic_tokens_with_the_health_systems_typed_aud_are_accepted(
    knowledge: Knowledge, data_dir: Path, closing: list[TestClient]
) -> None:
    jwks = JwksServer({EPIC["jku"][0]: jwk_set(KEYS["RS384"])})
    client = service(knowledge, "epic.yaml", EPIC_BASE, jwks)
    closing.append(client)
    typed = EPIC["audiences"][0]
    assert typed == EPIC_BASE + SIGN + "/", "the preset lists the trailing-slash spelling"
    assert call(client, epic_token(typed)) == 200
    assert call(client, epic_token(EPIC["audiences"][1])) == 200
    assert call(client, epic_token(EPIC_BASE + SIGN)) == 200  # the URL invoked, always
    assert call(client, epic_token("https://cds.example-payer.org/elsewhere")) == 401
    assert call(client, epic_token(typed, nbf=int(time.time()) + 600)) == 401  # nbf honoured
    assert jwks.requested == [EPIC["jku"][0]]


def test_another_issuers_audiences_do_not_widen_this_one(
    knowledge: Knowledge, data_dir: Path, closing: list[TestClient]
) -> None:
    jwks = JwksServer({EPIC["jku"][0]: jwk_set(KEYS["RS384"])})
    settings = Settings(
        CDS_AUTH=True, CDS_PUBLIC_BASE_URL=EPIC_BASE,
        CDS_ISSUERS=yaml.safe_dump({"issuers": [{**EPIC, "audiences": []}]}),
    )  # fmt: skip
    client = TestClient(create_app(settings, knowledge, jwks_transport=jwks))
    closing.append(client)
    assert call(client, epic_token(EPIC["audiences"][0])) == 401
    assert call(client, epic_token(EPIC_BASE + SIGN)) == 200


# --- Oracle Health --------------------------------------------------------------------------------
ORACLE = preset("oracle-health.yaml")
ORACLE_JKU = "https://authorization.cerner.com/jwk/tenant-keys/ec2458f2"
UNLISTED_JKU = "https://attacker.example.org/jwks.json"


def oracle_token(jku: str | None = ORACLE_JKU, **changes: Any) -> str:
    claims = {"iss": ORACLE["iss"], "aud": EPIC_BASE + SIGN} | changes
    return signed("ES384", header={"jku": jku}, **claims)


def test_oracle_tokens_are_trusted_when_their_jku_is_on_the_published_list(
    knowledge: Knowledge, data_dir: Path, closing: list[TestClient]
) -> None:
    jwks = JwksServer({
        ORACLE["jku_list_url"]: {"jkus": [ORACLE_JKU, "https://authorization.cerner.com/jwk/x"]},
        ORACLE_JKU: jwk_set(KEYS["ES384"]),
        UNLISTED_JKU: jwk_set(KEYS["ES384"]),
    })  # fmt: skip
    client = service(knowledge, "oracle-health.yaml", EPIC_BASE, jwks)
    closing.append(client)
    assert call(client, oracle_token()) == 200
    assert call(client, oracle_token()) == 200  # the list and the keys are cached
    assert call(client, oracle_token(UNLISTED_JKU)) == 401
    assert call(client, oracle_token(None)) == 401  # no jku: nothing names the keys
    assert UNLISTED_JKU not in jwks.requested  # never fetched
    assert jwks.requested.count(ORACLE["jku_list_url"]) == 1
    assert jwks.requested.count(ORACLE_JKU) == 1


def test_an_unreachable_jku_list_refuses_the_token(
    knowledge: Knowledge, data_dir: Path, closing: list[TestClient]
) -> None:
    client = service(knowledge, "oracle-health.yaml", EPIC_BASE, JwksServer({}))
    closing.append(client)
    assert call(client, oracle_token()) == 401


def test_jku_lists_are_read_in_either_layout() -> None:
    a, b = "https://k.example.org/a", "https://k.example.org/b"
    assert listed_urls([a, b]) == {a, b}
    assert listed_urls({"jkus": [a], "other": {"url": b}, "n": 3}) == {a, b}
    assert listed_urls({"jkus": ["not a url"]}) == set()


def test_production_refuses_a_cleartext_jku_list(data_dir: Path) -> None:
    document = {"issuers": [{"iss": "https://ehr.example.org", "jku_list_url": "http://ehr.example.org/jwk"}]}  # fmt: skip
    settings = Settings(CDS_ENV="production", CDS_PUBLIC_BASE_URL=EPIC_BASE,
                        CDS_ISSUERS=yaml.safe_dump(document))  # fmt: skip
    with pytest.raises(ConfigError, match="jku_list_url"):
        build_verifier(settings)


# --- the CDS Hooks sandbox ------------------------------------------------------------------------
def test_the_sandbox_preset_accepts_its_es384_tokens(
    knowledge: Knowledge, data_dir: Path, closing: list[TestClient]
) -> None:
    sandbox = preset("cds-hooks-sandbox.yaml")
    jwks = JwksServer({sandbox["jku"][0]: jwk_set(KEYS["ES384"])})
    client = service(knowledge, "cds-hooks-sandbox.yaml", "http://127.0.0.1:8000", jwks)
    closing.append(client)
    aud = "http://127.0.0.1:8000" + SIGN
    token = signed("ES384", header={"jku": sandbox["jku"][0]}, iss=sandbox["iss"], aud=aud)
    assert call(client, token) == 200
    rs = signed("RS384", header={"jku": sandbox["jku"][0]}, iss=sandbox["iss"], aud=aud)
    assert call(client, rs) == 401  # the preset allows ES384 only
