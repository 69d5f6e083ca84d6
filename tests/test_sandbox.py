"""The sandbox's server side through the real HTTP API: the page and its assets, the scenario
catalogue, the request builder (whose requests the service must accept) and its errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cds_service.api.app import create_app
from cds_service.compose import create_dev_app
from cds_service.fixture_server import serve_in_thread
from cds_service.policy_store import Knowledge
from cds_service.sandbox import SandboxFhir, mount_sandbox
from cds_service.sandbox.router import STATIC_DIR
from cds_service.scenarios import FIXTURES_DIR
from cds_service.settings import Settings

BUILD = "/sandbox/api/request"


@pytest.fixture(scope="module")
def client(knowledge: Knowledge) -> Iterator[TestClient]:
    """The development composition: the service with the sandbox mounted (on in development)."""
    app = create_dev_app(Settings(), knowledge)
    try:
        yield TestClient(app)
    finally:
        app.state.audit.close()


def build(client: TestClient, **spec: Any) -> dict[str, Any]:
    response = client.post(BUILD, json={"scenario": "relapsed-aml-allo-mac", **spec})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_page_and_its_assets_are_served(client: TestClient) -> None:
    page = client.get("/sandbox")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/sandbox/static/sandbox.js" in assets
    for asset in assets:
        if asset.startswith("/sandbox/static/"):
            assert client.get(asset).status_code == 200, asset


def test_no_asset_comes_from_another_host() -> None:
    """Hospital networks often have no internet: nothing may load from a CDN."""
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r'(?:src|href)="(?:https?:)?//', text), path.name
        assert not re.search(r'(?:import|from)\s*\(?\s*"(?:https?:)?//', text), path.name
        assert "@import" not in text and "url(http" not in text, path.name


def test_the_catalogue_lists_scenarios_policies_and_prefetch_modes(
    client: TestClient, knowledge: Knowledge
) -> None:
    body = client.get("/sandbox/api/scenarios").json()
    scenarios = {s["id"]: s for s in body["scenarios"]}
    assert sorted(scenarios) == sorted(p.stem for p in FIXTURES_DIR.glob("*.yaml"))
    aml = scenarios["relapsed-aml-allo-mac"]
    assert aml["payer"] == "molina-mcp-210" and aml["services"] == ["dli", "hpc-boost"]
    assert aml["expected"]["dli"]["centene-cp.mp.101"] == "meets-criteria"
    assert [p["id"] for p in body["policies"]] == [p.id for p in knowledge.policies]
    modes = {m["id"]: m for m in body["prefetchModes"]}
    assert modes["full"]["available"] is True
    assert modes["none"]["available"] is True  # the app hosts the fixture FHIR server


def test_without_a_fixture_fhir_server_no_prefetch_is_refused(knowledge: Knowledge) -> None:
    app = create_app(Settings(CDS_SANDBOX=False), knowledge)
    mount_sandbox(app, knowledge)
    client = TestClient(app)
    modes = {m["id"]: m for m in client.get("/sandbox/api/scenarios").json()["prefetchModes"]}
    assert modes["none"]["available"] is False and "FHIR server" in modes["none"]["reason"]
    response = client.post(BUILD, json={"scenario": "relapsed-aml-allo-mac", "prefetch": "none"})
    assert response.status_code == 400 and "needs a fixture FHIR server" in response.text


def _payer_names(body: dict[str, Any]) -> set[str]:
    return {e["payer"] for card in body["cards"] for e in card["extension"]["dli-hpc-cds.evaluations"]}  # fmt: skip


BUILT = [
    # spec, service the page must POST to, orders, payers the service then evaluates
    ({}, "/cds-services/dli-hpc-order-sign", ["ram-dli"], {"Molina Healthcare"}),
    ({"payer": "none", "hook": "order-select"}, "/cds-services/dli-hpc-order-select", ["ram-dli"],
     5),
    ({"payer": "centene-cp.mp.101"}, "/cds-services/dli-hpc-order-sign", ["ram-dli"], {"Centene"}),
    ({"hook": "order-select", "services": "hpc-boost"}, "/cds-services/dli-hpc-order-select",
     ["ram-hpc"], {"Molina Healthcare"}),
    ({"services": "both"}, "/cds-services/dli-hpc-order-sign", ["ram-dli", "ram-hpc"],
     {"Molina Healthcare"}),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "service", "orders", "payers"), BUILT)
def test_built_requests_are_answered_by_the_service(
    client: TestClient, spec: dict[str, Any], service: str, orders: list[str], payers: Any
) -> None:
    built = build(client, **spec)
    assert built["service"] == service
    request = built["request"]
    entries = request["context"]["draftOrders"]["entry"]
    assert [e["resource"]["id"] for e in entries] == orders
    if spec.get("hook") == "order-select":
        assert request["context"]["selections"] == [f"ServiceRequest/{o}" for o in orders]
    answer = client.post(service, json=request)
    assert answer.status_code == 200, answer.text
    names = _payer_names(answer.json())
    assert len(names) == payers if isinstance(payers, int) else names == payers
    if spec.get("payer") == "none":
        assert request["prefetch"]["coverage"] is None


BAD_SPECS = [
    ({"scenario": "no-such-patient"}, 404, "no scenario 'no-such-patient'"),
    ({"payer": "acme"}, 400, "payer must be 'fixture', 'none' or one of"),
    ({"hook": "patient-view"}, 400, "hook: Input should be 'order-sign' or 'order-select'"),
    ({"services": "cart"}, 400, "services:"),
    ({"colour": "red"}, 400, "colour: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("change", "status", "message"), BAD_SPECS)
def test_bad_specs_get_an_operation_outcome(
    client: TestClient, change: dict[str, Any], status: int, message: str
) -> None:
    response = client.post(BUILD, json={"scenario": "relapsed-aml-allo-mac", **change})
    assert response.status_code == status
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert message in body["issue"][0]["diagnostics"]


def test_a_body_that_is_not_json_is_a_400(client: TestClient) -> None:
    response = client.post(BUILD, content=b"{", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "Invalid JSON" in response.text


def test_prefetch_none_names_the_fhir_server_instead(knowledge: Knowledge) -> None:
    app = create_app(Settings(CDS_SANDBOX=False), knowledge)
    mount_sandbox(app, knowledge, SandboxFhir(token="t0ken", url="http://127.0.0.1:9/fhir"))
    client = TestClient(app)
    modes = {m["id"]: m for m in client.get("/sandbox/api/scenarios").json()["prefetchModes"]}
    assert modes["none"]["available"] is True
    request = build(client, prefetch="none")["request"]
    assert "prefetch" not in request and request["fhirServer"] == "http://127.0.0.1:9/fhir"
    assert request["fhirAuthorization"]["access_token"] == "t0ken"
    response = client.post(BUILD, json={"scenario": "relapsed-aml-allo-mac", "prefetch": "none",
                                        "payer": "none"})  # fmt: skip
    assert response.status_code == 400 and "payer comes from the FHIR server" in response.text


PRODUCTION_ISSUER = json.dumps(
    {"issuers": [{"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks"}]}
)


@pytest.mark.parametrize(
    ("env", "sandbox", "served"),
    [
        ("development", None, True),
        ("production", None, False),  # CDS_SANDBOX=true is refused (tests/test_production.py)
        ("development", False, False),
    ],
)
def test_the_sandbox_setting(
    knowledge: Knowledge, env: str, sandbox: bool | None, served: bool
) -> None:
    values: dict[str, Any] = {"CDS_ENV": env}
    if env == "production":  # production refuses to start without client trust configured
        values |= {
            "CDS_ISSUERS": PRODUCTION_ISSUER,
            "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
        }
    if sandbox is not None:
        values["CDS_SANDBOX"] = sandbox
    client = TestClient(create_dev_app(Settings(**values), knowledge))
    assert (client.get("/sandbox").status_code == 200) is served
    assert (client.get("/sandbox/api/scenarios").status_code == 200) is served


def test_no_prefetch_reads_the_hosted_fixture_server_over_http(knowledge: Knowledge) -> None:
    """The sandbox's no-prefetch request makes the service fetch everything from the fixture
    FHIR server it hosts, over real HTTP, and the answer matches full prefetch."""
    app = create_dev_app(Settings(), knowledge)
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        results = {}
        for mode in ("full", "none"):
            built = http.post(BUILD, json={"scenario": "relapsed-aml-allo-mac", "prefetch": mode})
            built.raise_for_status()
            answer = http.post(built.json()["service"], json=built.json()["request"])
            assert answer.status_code == 200, answer.text
            results[mode] = [
                (e["policyId"], e["determination"], [c["status"] for c in e["criteria"]])
                for card in answer.json()["cards"]
                for e in card["extension"]["dli-hpc-cds.evaluations"]
            ]
    assert results["none"] == results["full"] and results["full"]


def test_stored_worksheets_belong_to_their_sandbox_session(knowledge: Knowledge) -> None:
    """Issue 21: a worksheet stored by one session changes that session's answers only, with
    prefetch (the page sends them) and without (the service reads the fixture server as
    `<base>/session/<id>`); a request with no session (the README loop) sees none."""
    from cds_service.core import Service, worksheets
    from tests.test_attestation import worksheet_answers

    sheet = next(s for s in worksheets(knowledge.policies)
                 if s.policy.id == "molina-mcp-210" and s.service is Service.DLI)  # fmt: skip
    qr = worksheet_answers(sheet, "relapse-before-transplant-only",
                           {"molina-dli-planned-prevention": True})  # fmt: skip
    app = create_dev_app(Settings(), knowledge)
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        stored = http.post("/sandbox/api/worksheet?session=tab-a", json=qr)
        assert stored.status_code == 201, stored.text

        def determination(**spec: Any) -> str:
            built = http.post(BUILD, json={"scenario": "relapse-before-transplant-only", **spec})
            built.raise_for_status()
            answer = http.post(built.json()["service"], json=built.json()["request"]).json()
            first = answer["cards"][0]["extension"]["dli-hpc-cds.evaluations"][0]
            return str(first["determination"])

        for prefetch in ("full", "none"):
            assert determination(prefetch=prefetch, session="tab-a") == "meets-criteria"
            assert determination(prefetch=prefetch, session="tab-b") == "needs-information"
            assert determination(prefetch=prefetch) == "needs-information"
