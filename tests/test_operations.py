"""Running the service: `/metrics`, the CRDMetricData in the audit record, `audit metrics`, the
assertion look-up (HTTP and CLI) and `GET /`. Everything through the real app, CLI and an
SQLite audit database in a temporary folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cds_service.api.app import create_app
from cds_service.audit.store import AuditFilter
from cds_service.cli import app as cli
from cds_service.compose import create_dev_app
from cds_service.core.cards import COVERAGE_INFO_URL
from cds_service.policy_store import Knowledge
from cds_service.scenarios import build_request, find_scenario, point_at_fhir_server
from cds_service.settings import Settings
from tests.clients import BASE_URL, ISS, JKU, KEYS, JwksServer, auth_client, jwk_set, signed

SIGN = "/cds-services/dli-hpc-order-sign"
SELECT = "/cds-services/dli-hpc-order-select"
SMOKER = find_scenario("current-smoker")  # Centene: DLI does not meet criteria (I.C.4)
OPERATOR_TOKEN = "operator-token-0123456789abcdef"
runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def app(data_dir: Path, knowledge: Knowledge) -> Iterator[FastAPI]:
    app = create_app(Settings(), knowledge)
    yield app
    app.state.audit.close()


def smoker_request(hook: str = "order-sign") -> dict[str, Any]:
    return build_request(SMOKER.bundle(), hook)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, parsed by prometheus-client's own parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def assertion_id_of(body: dict[str, Any]) -> str:
    resource = body["systemActions"][0]["resource"]
    info = next(x for x in resource["extension"] if x["url"] == COVERAGE_INFO_URL)
    return str(next(p["valueString"] for p in info["extension"] if p["url"] == "coverage-assertion-id"))


# --- /metrics ---------------------------------------------------------------------------------
def test_metrics_count_calls_per_hook_payer_and_determination(app: FastAPI) -> None:
    client = TestClient(app)
    for _ in range(3):
        assert client.post(SIGN, json=smoker_request()).status_code == 200
    assert client.post(SELECT, json=smoker_request("order-select")).status_code == 200
    assert client.post(SIGN, content=b"{not json").status_code == 400

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    sign = {"service": "dli-hpc-order-sign", "hook": "order-sign"}
    payer = {"payer": "centene-cp.mp.101", "crd_version": "2.0.1"}
    assert value(found, "cds_hook_duration_seconds_count", **sign, **payer) == 3
    assert value(found, "cds_hook_duration_seconds_bucket", **sign, **payer, le="+Inf") == 3
    select = {"service": "dli-hpc-order-select", "hook": "order-select"}
    assert value(found, "cds_hook_duration_seconds_count", **select, **payer) == 1
    assert value(found, "cds_determinations_total", **sign, policy="centene-cp.mp.101",
                 determination="does-not-meet-criteria") == 3  # fmt: skip
    assert value(found, "cds_coverage_information_total", hook="order-sign",
                 payer="centene-cp.mp.101", covered="not-covered") == 3  # fmt: skip
    assert value(found, "cds_orders_total", hook="order-select", payer="centene-cp.mp.101") == 1
    assert value(found, "cds_hook_responses_total", service="dli-hpc-order-sign", status="400") == 1
    assert value(found, "cds_hook_responses_total", service="dli-hpc-order-sign", status="200") == 3
    assert value(found, "cds_audit_records", state="dropped") == 0
    assert value(found, "cds_audit_storage_ok") is not None
    assert value(found, "cds_large_calls", state="capacity") == 16
    assert value(found, "cds_replay_cache_ok", backend="memory") is None  # auth off: no cache


def test_metrics_carry_no_patient_or_order_data(app: FastAPI) -> None:
    client = TestClient(app)
    request = smoker_request()
    client.post(SIGN, json=request)
    text = client.get("/metrics").text
    patient = request["context"]["patientId"]
    orders = [e["resource"]["id"] for e in request["context"]["draftOrders"]["entry"]]
    for private in (patient, *orders, request["hookInstance"]):
        assert private not in text


def test_fallback_fetches_are_counted_by_outcome(data_dir: Path, knowledge: Knowledge) -> None:
    def refuse(_: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    app = create_app(Settings(), knowledge, fhir_transport=httpx.MockTransport(refuse))
    request = smoker_request()
    del request["prefetch"]["observations"]
    point_at_fhir_server(request, "http://ehr.test/fhir", "ehr-token")
    try:
        client = TestClient(app)
        assert client.post(SIGN, json=request).status_code == 200
        found = samples(client.get("/metrics").text)
    finally:
        app.state.audit.close()
    assert value(found, "cds_fallback_fetches_total", key="observations", outcome="failed") == 1


def test_metrics_are_for_the_operator_or_a_client_when_auth_is_on(
    knowledge: Knowledge, data_dir: Path
) -> None:
    jwks = JwksServer({JKU: jwk_set(KEYS["ES384"])})
    client = auth_client(knowledge, jwks, CDS_OPERATOR_TOKEN=OPERATOR_TOKEN)
    try:
        assert client.get("/metrics").status_code == 401
        wrong = {"Authorization": "Bearer not-the-operator-token-at-all"}
        assert client.get("/metrics", headers=wrong).status_code == 401
        operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        response = client.get("/metrics", headers=operator)
        assert response.status_code == 200
        assert "cds_client_tokens_total" in response.text
        token = signed(aud=BASE_URL + "/metrics")
        assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        found = samples(client.get("/metrics", headers=operator).text)
        assert value(found, "cds_client_tokens_total", outcome="accepted") == 1
        assert value(found, "cds_client_tokens_total", outcome="rejected") == 2
        assert value(found, "cds_replay_cache_ok", backend="memory") == 1
    finally:
        client.app.state.audit.close()  # type: ignore[attr-defined]


def test_metrics_from_an_operator_network(knowledge: Knowledge, data_dir: Path) -> None:
    jwks = JwksServer({JKU: jwk_set(KEYS["ES384"])})
    inside = auth_client(knowledge, jwks, CDS_OPERATOR_NETWORKS="10.0.0.0/8")
    try:
        scraper = TestClient(inside.app, client=("10.1.2.3", 40000))
        outsider = TestClient(inside.app, client=("192.0.2.7", 40000))
        assert scraper.get("/metrics").status_code == 200
        assert outsider.get("/metrics").status_code == 401
    finally:
        inside.app.state.audit.close()  # type: ignore[attr-defined]


def test_operator_networks_must_be_cidrs() -> None:
    with pytest.raises(ValueError, match="CDS_OPERATOR_NETWORKS"):
        Settings(CDS_OPERATOR_NETWORKS="10.0.0.0/8, not-a-network")


# --- the audit record's CRDMetricData and `audit metrics` -------------------------------------
def test_each_call_records_its_crd_metric_data(app: FastAPI) -> None:
    client = TestClient(app)
    request = smoker_request()
    request["extension"] = {"davinci-crd.requestedVersion": "2.2"}
    client.post(SIGN, json=request)
    client.post(SELECT, json=smoker_request("order-select"))
    assert app.state.audit.flush()
    rows = app.state.audit.ready_store().decisions(AuditFilter())
    sign, select = sorted(rows, key=lambda r: r.hook, reverse=True)
    assert (sign.hook, sign.payer, sign.crd_version, sign.http_status, sign.token_use) == (
        "order-sign", "centene-cp.mp.101", "2.2", 200, "not-used"
    )
    assert sign.sources == {}  # everything came in prefetch
    info = sign.evaluations[0].coverage_info
    assert info is not None and info["covered"] == "not-covered"
    assert info["assertionId"] == sign.evaluations[0].coverage_assertion_id
    assert (select.payer, select.crd_version) == ("centene-cp.mp.101", "2.0.1")
    assert select.evaluations[0].coverage_info is None  # order-select: cards only


def test_audit_metrics_reports_percentiles_and_shares_per_hook_and_payer(app: FastAPI) -> None:
    client = TestClient(app)
    for _ in range(4):
        client.post(SIGN, json=smoker_request())
    client.post(SELECT, json=smoker_request("order-select"))
    assert app.state.audit.flush()
    result = runner.invoke(cli, ["audit", "metrics", "--json", "--since", "2020-01-01"])
    assert result.exit_code == 0, result.output
    rows = {(r["hook"], r["payer"]): r for r in json.loads(result.stdout)}
    sign = rows["order-sign", "centene-cp.mp.101"]
    assert sign["calls"] == 4 and sign["shareUnder5s"] == 1.0
    assert sign["shareWithCoverageInfo"] == 1.0 and sign["covered"] == {"not-covered": 4}
    assert 0 < sign["p50Ms"] <= sign["p90Ms"]
    select = rows["order-select", "centene-cp.mp.101"]
    assert select["calls"] == 1 and select["shareWithCoverageInfo"] == 0.0
    table = runner.invoke(cli, ["audit", "metrics"])
    assert table.exit_code == 0 and "centene-cp.mp.101" in table.stdout
    empty = runner.invoke(cli, ["audit", "metrics", "--until", "2000-01-01"])
    assert empty.exit_code == 0 and "no hook calls" in empty.output


# --- assertion look-up ------------------------------------------------------------------------
def test_a_fired_hooks_assertion_is_retrievable_over_http_and_cli(app: FastAPI) -> None:
    client = TestClient(app)
    request = smoker_request()
    body = client.post(SIGN, json=request).json()
    assertion_id = assertion_id_of(body)
    assert app.state.audit.flush()

    response = client.get(f"/audit/assertions/{assertion_id}")
    assert response.status_code == 200, response.text
    found = response.json()
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    assert found["coverageAssertionId"] == assertion_id
    assert found["hookInstance"] == request["hookInstance"]
    assert (found["serviceId"], found["hook"], found["dataSource"]) == (
        "dli-hpc-order-sign", "order-sign", "prefetch"
    )
    assert found["patient"] == f"Patient/{request['context']['patientId']}"
    [asserted] = found["orders"]
    assert asserted["order"] == f"ServiceRequest/{order['id']}"
    assert (asserted["policyId"], asserted["policyVersion"]) == ("centene-cp.mp.101", "2023-02")
    assert asserted["determination"] == "does-not-meet-criteria"
    assert asserted["coverageInfo"]["covered"] == "not-covered"
    by_id = {c["id"]: c for c in asserted["criteria"]}
    smoking = by_id["centene-dli-no-active-substance-use"]
    assert smoking["status"] == "not-met"
    assert smoking["evidence"] and all(_is_reference(r) for r in smoking["evidence"])
    assert asserted["worksheetAnswers"] == []
    # ids and codes only: no card text, no clinical values
    assert set(smoking) == {"id", "status", "evidence"}

    shown = runner.invoke(cli, ["audit", "show", assertion_id])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == found


def _is_reference(text: str) -> bool:
    kind, _, ident = text.partition("/")
    return kind.isalpha() and bool(ident)


def test_assertion_lookup_answers_404_and_400(app: FastAPI) -> None:
    client = TestClient(app)
    missing = client.get("/audit/assertions/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert client.get("/audit/assertions/not%20an%20id!").status_code == 400
    unknown = runner.invoke(cli, ["audit", "show", "no-such-assertion"])
    assert unknown.exit_code == 2 and "coverage-assertion-id" in unknown.output


def test_a_client_sees_only_its_own_assertions(knowledge: Knowledge, data_dir: Path) -> None:
    other_iss = "https://other-ehr.example.org"
    other_jku = "https://other-ehr.example.org/jwks.json"
    issuers = {"issuers": [
        {"iss": ISS, "jku": [JKU], "algorithms": ["ES384"]},
        {"iss": other_iss, "jku": [other_jku], "algorithms": ["ES384"]},
    ]}  # fmt: skip
    jwks = JwksServer({JKU: jwk_set(KEYS["ES384"]), other_jku: jwk_set(KEYS["ES384"])})
    settings = Settings(CDS_AUTH=True, CDS_PUBLIC_BASE_URL=BASE_URL, CDS_ISSUERS=json.dumps(issuers))
    app = create_app(settings, knowledge, jwks_transport=jwks)
    try:
        client = TestClient(app)
        body = client.post(SIGN, json=smoker_request(),
                           headers={"Authorization": f"Bearer {signed()}"}).json()  # fmt: skip
        assertion_id = assertion_id_of(body)
        assert app.state.audit.flush()
        path = f"/audit/assertions/{assertion_id}"
        own = signed(aud=BASE_URL + path)
        other = signed(aud=BASE_URL + path, iss=other_iss, header={"jku": other_jku})
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {own}"}).status_code == 200
        assert client.get(path, headers={"Authorization": f"Bearer {other}"}).status_code == 404
    finally:
        app.state.audit.close()


# --- GET / ------------------------------------------------------------------------------------
def test_the_home_page_points_to_discovery_sandbox_and_docs(data_dir: Path) -> None:
    app = create_dev_app(Settings())
    try:
        client = TestClient(app)
        response = client.get("/")
        assert response.status_code == 200
        links = response.json()["links"]
        assert links["discovery"] == "/cds-services" and links["sandbox"] == "/sandbox"
        assert links["docs"] == "/docs"
        for path in (links["discovery"], links["sandbox"], links["docs"]):
            assert client.get(path).status_code == 200
    finally:
        app.state.audit.close()


def test_production_home_page_names_no_sandbox_or_docs(knowledge: Knowledge, data_dir: Path) -> None:
    jwks = JwksServer({JKU: jwk_set(KEYS["ES384"])})
    settings = Settings(CDS_ENV="production", CDS_PUBLIC_BASE_URL=BASE_URL,
                        CDS_ISSUERS=json.dumps({"issuers": [{"iss": ISS, "jku": [JKU]}]}))  # fmt: skip
    app = create_dev_app(settings, knowledge, jwks_transport=jwks)
    try:
        links = TestClient(app).get("/").json()["links"]
    finally:
        app.state.audit.close()
    assert "sandbox" not in links and "docs" not in links
