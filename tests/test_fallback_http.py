"""End to end over real HTTP: the fixture FHIR server (uvicorn, ephemeral loopback port) feeds
the service, and every scenario gives the same result with full, partial and no prefetch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cds_service.api.discovery import PREFETCH
from cds_service.cli import app as cli
from cds_service.core.model import Service
from cds_service.fixture_server import create_fixture_server, serve_in_thread
from cds_service.policy_store import load
from cds_service.scenarios import (
    PARTIAL_PREFETCH_KEYS,
    Scenario,
    build_request,
    load_scenarios,
    point_at_fhir_server,
    service_id,
)

TOKEN = "fixture-token"
PAGE_SIZE = 4  # small, so that real scenarios page
SCENARIOS = load_scenarios()
HANDLED = {p.id for p in load().policies}


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[str]:
    with serve_in_thread(create_fixture_server(TOKEN, page_size=PAGE_SIZE)) as base:
        yield base


def evaluations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for card in body["cards"] for e in card["extension"]["dli-hpc-cds.evaluations"]]


def coverage_information(body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The coverage-information of each system action, without its (random) assertion id."""
    return [
        [
            p
            for p in a["resource"]["extension"][-1]["extension"]
            if p["url"] != "coverage-assertion-id"
        ]
        for a in body.get("systemActions", [])
    ]


def call(
    client: TestClient,
    scenario: Scenario,
    service: Service,
    keys: tuple[str, ...] | None,
    server: str | None = None,
) -> dict[str, Any]:
    # order-sign answers only for a payer it handles (CRD hook-13); the others compare payers
    hook = "order-sign" if scenario.payer in HANDLED else "order-select"
    request = build_request(scenario.bundle(), hook, (service,), keys)
    if server is not None:
        point_at_fhir_server(request, server, TOKEN)
    response = client.post(f"/cds-services/{service_id(hook)}", json=request)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
@pytest.mark.parametrize("service", list(Service), ids=lambda s: s.value)
def test_full_partial_and_no_prefetch_agree(
    client: TestClient, fhir_server: str, scenario: Scenario, service: Service
) -> None:
    full = call(client, scenario, service, None)
    none = call(client, scenario, service, (), fhir_server)
    partial = call(client, scenario, service, PARTIAL_PREFETCH_KEYS, fhir_server)
    assert evaluations(none) == evaluations(full)
    assert evaluations(partial) == evaluations(full)
    assert coverage_information(none) == coverage_information(full)
    assert coverage_information(partial) == coverage_information(full)
    assert "Could not be retrieved" not in repr(none)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_fetched_data_gives_the_declared_determinations(
    client: TestClient, fhir_server: str, scenario: Scenario
) -> None:
    """Coverage sent as null (all five policies), every clinical key fetched over HTTP."""
    for service in Service:
        request = build_request(scenario.bundle(), "order-select", (service,), ())
        request["prefetch"]["coverage"] = None
        point_at_fhir_server(request, fhir_server, TOKEN)
        response = client.post(f"/cds-services/{service_id('order-select')}", json=request)
        got = {e["policyId"]: e["determination"] for e in evaluations(response.json())}
        assert got == scenario.expected[service.value]


def test_the_fixture_server_stores_a_worksheet_and_finds_it_by_subject(fhir_server: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answers = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://dli-hpc-cds.org/fhir/Questionnaire/molina-dli|2026-02-11",
        # no scenario patient: the other tests here fetch their patients' worksheets
        "subject": {"reference": "Patient/worksheet-only"},
        "item": [{"linkId": "molina-dli-planned-prevention", "answer": [{"valueBoolean": True}]}],
    }
    with httpx.Client(base_url=fhir_server, headers=auth) as ehr:
        assert ehr.post("/QuestionnaireResponse", json={"resourceType": "Nope"}).status_code == 400
        created = ehr.post("/QuestionnaireResponse", json=answers)
        assert created.status_code == 201 and created.json()["id"].startswith("ws-")
        assert created.headers["location"].endswith(
            "/QuestionnaireResponse/" + created.json()["id"]
        )
        query = PREFETCH["questionnaireResponses"].replace(
            "{{context.patientId}}", "worksheet-only"
        )
        found = ehr.get("/" + query).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [created.json()["id"]]
        other = ehr.get("/" + query.replace("worksheet-only", "relapsed-aml-allo-mac"))
        assert other.json()["total"] == 0


def test_fixture_server_rest(fhir_server: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fhir_server, headers=auth) as ehr:
        assert httpx.get(f"{fhir_server}/Patient/relapsed-aml-allo-mac").status_code == 401
        wrong = httpx.get(
            f"{fhir_server}/Patient/relapsed-aml-allo-mac", headers={"Authorization": "Bearer x"}
        )
        assert wrong.status_code == 401 and wrong.json()["resourceType"] == "OperationOutcome"
        assert ehr.get("/Patient/relapsed-aml-allo-mac").json()["id"] == "relapsed-aml-allo-mac"
        assert ehr.get("/Patient/nobody").status_code == 404
        assert ehr.get("/Condition", params={"category": "x"}).status_code == 400
        assert ehr.get("/Condition", params={"patient": "x", "_count": "many"}).status_code == 400
        query = PREFETCH["observations"].replace("{{context.patientId}}", "relapsed-aml-allo-mac")
        seen, pages = [], 0
        url: str | None = f"/{query}"
        while url:
            page = ehr.get(url).json()
            assert page["type"] == "searchset" and len(page["entry"]) <= PAGE_SIZE
            seen += [e["resource"] for e in page["entry"]]
            url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
            pages += 1
        assert pages > 1 and len(seen) == page["total"]
        assert {o["subject"]["reference"] for o in seen} == {"Patient/relapsed-aml-allo-mac"}
        codes = {c["code"] for o in seen for c in o["code"]["coding"]}
        assert "102113-8" in codes  # chimerism, one of the requested codes
        coverage = ehr.get(
            "/Coverage", params={"patient": "relapsed-aml-allo-mac", "status": "active"}
        )
        assert [e["resource"]["resourceType"] for e in coverage.json()["entry"]] == ["Coverage"]
        none = ehr.get("/Coverage", params={"patient": "relapsed-aml-allo-mac", "status": "draft"})
        assert none.json()["total"] == 0


runner = CliRunner()


@pytest.mark.parametrize("mode", ["--no-prefetch", "--partial-prefetch"])
def test_fire_fetches_from_a_fixture_server_of_its_own(mode: str) -> None:
    full = runner.invoke(cli, ["fire", "relapsed-aml-allo-mac", "--service", "both"])
    fetched = runner.invoke(cli, ["fire", "relapsed-aml-allo-mac", "--service", "both", mode])
    assert fetched.exit_code == 0, fetched.output
    assert fetched.output == full.output


def test_fire_against_a_given_fhir_server(fhir_server: str) -> None:
    args = ["fire", "mds-relapse", "--no-prefetch", "--fhir-server", fhir_server]
    ok = runner.invoke(cli, [*args, "--fhir-token", TOKEN])
    assert ok.exit_code == 0 and "mds-relapse" in ok.output
    refused = runner.invoke(cli, [*args, "--fhir-token", "wrong"])
    assert refused.exit_code == 1 and "HTTP 412" in refused.output and "HTTP 401" in refused.output


def test_fire_rejects_contradictory_prefetch_options() -> None:
    both = runner.invoke(cli, ["fire", "mds-relapse", "--no-prefetch", "--partial-prefetch"])
    assert both.exit_code == 2
    payer = runner.invoke(cli, ["fire", "mds-relapse", "--no-prefetch", "--payer", "none"])
    assert payer.exit_code == 2 and "--partial-prefetch" in payer.output
