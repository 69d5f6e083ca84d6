"""Fetching what prefetch lacks from the EHR's FHIR server, through the real HTTP API.

The EHR's FHIR server is either the fixture FHIR server in process (httpx.ASGITransport) or an
httpx.MockTransport that misbehaves on purpose; either way a recording transport shows exactly
which requests left the service, and with which headers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cds_service.api.allowlist import server_allowed
from cds_service.api.app import create_app
from cds_service.api.discovery import OPTIONAL_PREFETCH, REQUIRED_PREFETCH
from cds_service.core.cards import CRD_TEMP_SYSTEM
from cds_service.fixture_server import create_fixture_server
from cds_service.policy_store import load
from cds_service.scenarios import build_request, find_scenario, point_at_fhir_server
from cds_service.settings import Settings
from tests.conformance import problems

SIGN = "/cds-services/dli-hpc-order-sign"
SERVER = "http://ehr.test"
TOKEN = "tok-7c1f9e2b-not-for-logs"
BUNDLE = find_scenario("relapsed-aml-allo-mac").bundle()  # Molina; DLI meets criteria
FULL = build_request(BUNDLE)["prefetch"]
KEYS = tuple(REQUIRED_PREFETCH)
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
KNOWLEDGE = load()
Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to `inner` and keeps them, so tests see exactly what was sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def types(self) -> list[str]:
        return sorted(r.url.path.strip("/").split("/")[0] for r in self.requests)


@cache
def fixture_app(page_size: int) -> Any:
    return create_fixture_server(TOKEN, page_size=page_size)


def fixture_ehr(page_size: int = 20) -> Recorder:
    return Recorder(httpx.ASGITransport(app=fixture_app(page_size)))


def mock_ehr(handler: Handler) -> Recorder:
    return Recorder(httpx.MockTransport(handler))


def app_client(transport: httpx.AsyncBaseTransport | None, **settings: Any) -> TestClient:
    counter = itertools.count(1)
    app = create_app(
        Settings(**settings),
        KNOWLEDGE,
        clock=lambda: datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
        new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
        fhir_transport=transport,
    )
    return TestClient(app)


def hook(states: dict[str, str], server: str | None = SERVER, token: bool = True) -> dict[str, Any]:
    """An order-sign request whose prefetch keys are present / null / absent / outcome."""
    request = build_request(BUNDLE)
    # The optional keys are sent, as an EHR that prefetches them would (worksheet answers null =
    # none): these tests are about the record.
    request["prefetch"] = {
        "patient": FULL["patient"],
        **{k: FULL.get(k) for k in OPTIONAL_PREFETCH},
    }
    for key, state in states.items():
        if state != "absent":
            request["prefetch"][key] = {"present": FULL[key], "null": None, "outcome": OUTCOME}[
                state
            ]
    if server is not None:
        point_at_fhir_server(request, server, TOKEN)
        if not token:
            request.pop("fhirAuthorization")
    return request


def only_missing(key: str) -> dict[str, str]:
    return {k: "absent" if k == key else "present" for k in KEYS}


ALL_MISSING = dict.fromkeys(KEYS, "absent")


def evaluations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for card in body["cards"] for e in card["extension"]["dli-hpc-cds.evaluations"]]


def coverage_info(body: dict[str, Any]) -> dict[str, Any]:
    """The coverage-information parts of the first system action, by url (reasons listed)."""
    parts = body["systemActions"][0]["resource"]["extension"][-1]["extension"]
    info = {p["url"]: p for p in parts}
    info["reason"] = [p["valueCodeableConcept"] for p in parts if p["url"] == "reason"]
    info["detail"] = [{d["url"]: d for d in p["extension"]} for p in parts if p["url"] == "detail"]
    return info


def call(client: TestClient, request: dict[str, Any]) -> Any:
    """POST the order-sign `request`; with the Coverage sent as null (no payer, which order-sign
    answers with 400: CRD hook-13) as order-select, which compares every payer."""
    if request.get("prefetch", {}).get("coverage", "") is not None:
        return client.post(SIGN, json=request)
    request["hook"] = "order-select"
    request["context"]["selections"] = [
        f"ServiceRequest/{e['resource']['id']}" for e in request["context"]["draftOrders"]["entry"]
    ]
    return client.post("/cds-services/dli-hpc-order-select", json=request)


@cache
def reference(nulls: frozenset[str]) -> str:
    """Evaluations with full prefetch (no fhirServer) where `nulls` are sent as null."""
    states = {k: "null" if k in nulls else "present" for k in KEYS}
    response = call(app_client(None), hook(states, server=None))
    assert response.status_code == 200, response.text
    return repr(evaluations(response.json()))


STATES = ("present", "null", "absent", "outcome")
COMBINATIONS = [dict(zip(KEYS, c, strict=True)) for c in itertools.product(STATES, repeat=4)]


@pytest.mark.parametrize("states", COMBINATIONS, ids=lambda s: "-".join(v[:4] for v in s.values()))
def test_every_prefetch_combination(states: dict[str, str]) -> None:
    """Present: used; null: no data, never re-queried; absent or OperationOutcome: fetched."""
    ehr = fixture_ehr()
    response = call(app_client(ehr), hook(states))
    assert response.status_code == 200, response.text
    fetched = sorted(REQUIRED_PREFETCH[k] for k, s in states.items() if s in ("absent", "outcome"))
    assert ehr.types() == fetched
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in ehr.requests)
    nulls = frozenset(k for k, s in states.items() if s == "null")
    assert repr(evaluations(response.json())) == reference(nulls)
    assert "Could not be retrieved" not in response.text


def test_missing_keys_are_fetched_concurrently() -> None:
    """N missing keys, each answered after D seconds: all N are in flight at once."""
    delay, in_flight, peak = 0.4, [0], [0]

    async def slow(request: httpx.Request) -> httpx.Response:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(delay)
        in_flight[0] -= 1
        key = next(k for k, t in REQUIRED_PREFETCH.items() if request.url.path == f"/{t}")
        return httpx.Response(200, json=FULL[key])

    ehr = mock_ehr(slow)
    started = time.perf_counter()
    response = app_client(ehr).post(SIGN, json=hook(ALL_MISSING))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(ehr.requests) == len(KEYS) and peak[0] == len(KEYS)
    assert elapsed < len(KEYS) * delay  # ≈ D, not N × D
    assert repr(evaluations(response.json())) == reference(frozenset())


def test_next_links_are_followed() -> None:
    ehr = fixture_ehr(page_size=2)
    response = app_client(ehr).post(SIGN, json=hook(ALL_MISSING))
    assert response.status_code == 200
    observations = len(FULL["observations"]["entry"])
    assert observations > 4  # so the test really pages
    assert ehr.types().count("Observation") == -(-observations // 2)
    assert all("_offset" in str(r.url) for r in ehr.requests if r.url.params.get("_count"))
    assert repr(evaluations(response.json())) == reference(frozenset())


def test_more_pages_than_the_limit_leave_the_data_unavailable() -> None:
    ehr = fixture_ehr(page_size=2)
    body = hook(only_missing("observations"))
    response = app_client(ehr, CDS_FHIR_MAX_PAGES=2).post(SIGN, json=body)
    assert response.status_code == 200
    assert ehr.types() == ["Observation", "Observation"]
    result = response.json()
    statuses = {c["id"]: c["status"] for c in evaluations(result)[0]["criteria"]}
    assert statuses["molina-dli-mixed-chimerism"] == "unknown"
    assert (
        "Observation data (observations): the result has more than 2 pages"
        in (result["cards"][0]["detail"])
    )


async def _answer(status: int = 200, **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, **kwargs)


async def _never(_: httpx.Request) -> httpx.Response:
    await asyncio.sleep(30)
    raise AssertionError("unreachable: the query timeout cancels this")


async def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


FAILURES: list[tuple[str, Handler, str]] = [
    ("401", lambda _: _answer(401), "answered HTTP 401"),
    ("403", lambda _: _answer(403), "answered HTTP 403"),
    ("500", lambda _: _answer(500), "answered HTTP 500"),
    ("503", lambda _: _answer(503, json=OUTCOME), "answered HTTP 503"),
    ("timeout", _never, "no answer within 0.2 s"),
    ("unreachable", _refuse, "could not be reached (ConnectError)"),
    (
        "not JSON",
        lambda _: _answer(content=b"<html>gateway</html>"),
        "answered with something that is not JSON",
    ),
    (
        "not a Bundle",
        lambda _: _answer(json={"resourceType": "Patient"}),
        "answered with something that is not a FHIR Bundle",
    ),
    (
        "JSON array",
        lambda _: _answer(json=[1, 2]),
        "answered with something that is not a FHIR Bundle",
    ),
    ("OperationOutcome", lambda _: _answer(json=OUTCOME), "answered with an OperationOutcome"),
    (
        "redirect",
        lambda _: _answer(302, headers={"location": "http://evil.test/x"}),
        "answered HTTP 302",
    ),
]


@pytest.mark.parametrize(("why", "handler", "reason"), FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failing_server_leaves_its_criteria_unknown_and_says_so(
    why: str, handler: Handler, reason: str
) -> None:
    """Observations could not be fetched, the rest came in prefetch: 200, CRD 2.2 technical
    (the client asked for CRD 2.2)."""
    ehr = mock_ehr(handler)
    client = app_client(ehr, CDS_FHIR_QUERY_TIMEOUT_SECONDS=0.2)
    request = hook(only_missing("observations"))
    request["extension"] = {"davinci-crd.requestedVersion": "2.2"}
    response = client.post(SIGN, json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [str(r.url.host) for r in ehr.requests] == ["ehr.test"]  # no redirect followed
    (result,) = evaluations(body)
    statuses = {c["id"]: c["status"] for c in result["criteria"]}
    assert statuses["molina-dli-mixed-chimerism"] == "unknown"
    assert statuses["molina-dli-allogeneic-hsct"] == "met"  # from prefetch: unaffected
    assert result["determination"] == "needs-information"
    detail = body["cards"][0]["detail"]
    assert "**Could not be retrieved from the EHR**" in detail
    assert f"Observation data (observations): the EHR's FHIR server {reason}" in detail
    info = coverage_info(body)
    assert info["covered"]["valueCode"] == "indeterminate"
    assert info["doc-needed"]["valueCode"] == "indeterminate"
    technical = [r for r in info["reason"] if "coding" in r]
    assert technical[0]["coding"] == [{"system": CRD_TEMP_SYSTEM, "code": "technical"}]
    assert reason in technical[0]["text"]
    # info-needed OTH (Molina sets no prior-authorization rule) says what is needed; CRD 2.2
    # details carry a category.
    assert info["info-needed"]["valueCode"] == "OTH"
    assert any(reason in d["value"]["valueString"] for d in info["detail"])
    assert all(d["category"]["valueCode"] == "cat-limitation" for d in info["detail"])
    assert problems(body, "order-sign", crd="2.2") == []


@pytest.mark.parametrize(("why", "handler", "reason"), FAILURES, ids=[f[0] for f in FAILURES])
def test_nothing_usable_is_412(why: str, handler: Handler, reason: str) -> None:
    ehr = mock_ehr(handler)
    client = app_client(ehr, CDS_FHIR_QUERY_TIMEOUT_SECONDS=0.2)
    response = client.post(SIGN, json=hook(ALL_MISSING))
    assert response.status_code == 412
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "supplied none of it" in diagnostics and reason in diagnostics
    assert ehr.types() == sorted(REQUIRED_PREFETCH.values())


def test_a_determination_the_record_settles_despite_a_gap_stands() -> None:
    """Procedures unavailable, but the payer routes and a met result is not turned unknown."""
    ehr = mock_ehr(lambda _: _answer(503))
    request = hook(only_missing("coverage"))
    response = app_client(ehr).post(SIGN, json=request)
    # order-sign: no Coverage, so no payer it handles (CRD hook-13), and it says why
    assert response.status_code == 400 and "HTTP 503" in response.text
    request["hook"], request["context"]["selections"] = (
        "order-select",
        [
            f"ServiceRequest/{e['resource']['id']}"
            for e in request["context"]["draftOrders"]["entry"]
        ],
    )
    response = app_client(ehr).post("/cds-services/dli-hpc-order-select", json=request)
    body = response.json()
    assert response.status_code == 200
    assert "systemActions" not in body  # no Coverage: no coverage information to assert
    assert len({e["policyId"] for e in evaluations(body)}) == 5  # unknown payer: all five
    assert all("Coverage data (coverage)" in c["detail"] for c in body["cards"])


@pytest.mark.parametrize("version", [None, "2.0.1", "2.0"])
def test_a_crd_2_0_client_gets_conditional_not_indeterminate(version: str | None) -> None:
    """A 2.0.1 client cannot send requestedVersion: without a request for 2.1+, the fetch
    failure is told in codes both versions accept (conditional, doc-needed, info-needed OTH)."""
    body = hook(only_missing("observations"))
    if version is not None:
        body["extension"] = {"davinci-crd.requestedVersion": version}
    result = app_client(mock_ehr(lambda _: _answer(503))).post(SIGN, json=body).json()
    info = coverage_info(result)
    assert info["covered"]["valueCode"] == "conditional"
    assert info["doc-needed"]["valueCode"] == "clinical"
    assert info["info-needed"]["valueCode"] == "OTH"
    assert any("HTTP 503" in r["text"] and "coding" not in r for r in info["reason"])
    # What is needed, in a detail a 2.0.1 reader can read (CRD 2.0.1 defines no category).
    needed = [d["value"]["valueString"] for d in info["detail"]]
    assert any("could not supply" in n and "HTTP 503" in n for n in needed)
    assert not any("category" in d for d in info["detail"])
    assert problems(result, "order-sign") == []


def test_the_budget_bounds_the_whole_call() -> None:
    cancelled: list[str] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(request.url.path)
            raise
        raise AssertionError("the budget should have cancelled this")

    client = app_client(mock_ehr(hang), CDS_FHIR_BUDGET_SECONDS=0.3)
    response = client.post(SIGN, json=hook(ALL_MISSING))
    assert response.status_code == 412
    assert "did not finish within the 0.3 s budget" in response.json()["issue"][0]["diagnostics"]
    assert sorted(cancelled) == sorted(f"/{t}" for t in REQUIRED_PREFETCH.values())
    response = client.post(SIGN, json=hook(only_missing("conditions")))
    assert response.status_code == 200
    assert "did not finish within the 0.3 s budget" in response.json()["cards"][0]["detail"]


def test_pages_read_before_a_failure_are_kept() -> None:
    """Page 1 holds every Condition, page 2 fails: what page 1 shows counts; facts that rest on
    the latest or the absence of a Condition (a later remission could be on page 2) do not."""
    first = {**FULL["conditions"], "link": [{"relation": "next", "url": f"{SERVER}/page2"}]}

    async def flaky(request: httpx.Request) -> httpx.Response:
        return (
            httpx.Response(500) if request.url.path == "/page2" else httpx.Response(200, json=first)
        )

    response = app_client(mock_ehr(flaky)).post(SIGN, json=hook(only_missing("conditions")))
    body = response.json()
    statuses = {c["id"]: c["status"] for c in evaluations(body)[0]["criteria"]}
    assert statuses["molina-dli-hematologic-malignancy"] == "met"  # Condition/ram-dx, page 1
    assert statuses["molina-dli-relapsed-refractory-persistent"] == "unknown"  # latest unknown
    assert "answered HTTP 500 (page 2)" in body["cards"][0]["detail"]


def test_a_next_link_off_the_server_is_not_followed() -> None:
    page = {**FULL["observations"], "link": [{"relation": "next", "url": "http://evil.test/x"}]}
    ehr = mock_ehr(lambda _: _answer(json=page))
    response = app_client(ehr).post(SIGN, json=hook(only_missing("observations")))
    assert response.status_code == 200
    assert [r.url.host for r in ehr.requests] == ["ehr.test"]
    assert "linked its next page outside fhirServer" in response.json()["cards"][0]["detail"]


@pytest.mark.parametrize("token", [True, False], ids=["no fhirServer", "no fhirAuthorization"])
def test_412_when_there_is_no_way_to_fetch(token: bool) -> None:
    ehr = fixture_ehr()
    request = hook(only_missing("procedures"), server=None if token else SERVER, token=token)
    response = app_client(ehr).post(SIGN, json=request)
    assert response.status_code == 412
    assert "procedures (Procedure?patient=" in response.json()["issue"][0]["diagnostics"]
    assert ehr.requests == []


def test_nothing_is_fetched_for_orders_that_are_not_dli_or_hpc() -> None:
    ehr = fixture_ehr()
    request = hook(ALL_MISSING)
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["code"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "85025"}]}
    response = app_client(ehr).post(SIGN, json=request)
    assert response.json() == {"cards": []} and ehr.requests == []


ALLOW = "https://ehr.example.org/fhir"
ALLOWLIST_CASES = [
    ((ALLOW,), "production", "https://ehr.example.org/fhir", True),
    ((ALLOW,), "production", "https://ehr.example.org/fhir/", True),
    ((ALLOW,), "production", "https://EHR.example.org:443/fhir/tenant-1", True),
    ((ALLOW,), "production", "https://ehr.example.org/fhirx", False),
    ((ALLOW,), "production", "https://ehr.example.org/", False),
    ((ALLOW,), "production", "http://ehr.example.org/fhir", False),
    ((ALLOW,), "production", "https://ehr.example.org:8443/fhir", False),
    ((ALLOW,), "production", "https://ehr.example.org.evil.test/fhir", False),
    ((ALLOW,), "production", "https://ehr.example.org@evil.test/fhir", False),
    ((ALLOW,), "production", "https://ehr.example.org/fhir/../admin", False),
    ((ALLOW,), "production", "https://ehr.example.org/fhir/%2e%2e/admin", False),
    ((ALLOW,), "production", "https://ehr.example.org/fhir?x=1", False),
    ((ALLOW,), "development", "http://127.0.0.1:8090", False),
    ((), "development", "http://127.0.0.1:8090", True),
    ((), "development", "ftp://127.0.0.1/fhir", False),
    ((), "production", "https://ehr.example.org/fhir", False),
]


@pytest.mark.parametrize(("allowlist", "env", "url", "allowed"), ALLOWLIST_CASES)
def test_allowlist(allowlist: tuple[str, ...], env: str, url: str, allowed: bool) -> None:
    assert server_allowed(url, allowlist, env) is allowed


@pytest.mark.parametrize(
    ("settings", "server"),
    [
        ({"CDS_FHIR_ALLOWED_SERVERS": ALLOW}, "https://attacker.test/fhir"),
        ({"CDS_FHIR_ALLOWED_SERVERS": ALLOW}, "http://169.254.169.254/latest"),
        # production's empty default is in ALLOWLIST_CASES: through the API, production first
        # demands a client JWT (tests/test_auth.py)
    ],
)
def test_a_server_off_the_allowlist_is_refused_and_never_contacted(
    settings: dict[str, str], server: str
) -> None:
    ehr = fixture_ehr()
    response = app_client(ehr, **settings).post(SIGN, json=hook(ALL_MISSING, server=server))
    assert response.status_code == 400
    assert "not on this service's allowlist" in response.json()["issue"][0]["diagnostics"]
    assert ehr.requests == []


def test_the_allowlist_setting_takes_a_comma_separated_list(monkeypatch: Any) -> None:
    monkeypatch.setenv("CDS_FHIR_ALLOWED_SERVERS", f"{ALLOW}, {SERVER} ,")
    assert Settings().fhir_allowed_servers == (ALLOW, SERVER)
    ehr = fixture_ehr()
    assert app_client(ehr).post(SIGN, json=hook(ALL_MISSING)).status_code == 200
    assert len(ehr.requests) == len(KEYS)


def test_the_token_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app_client(fixture_ehr()).post(SIGN, json=hook(ALL_MISSING))
    app_client(mock_ehr(lambda _: _answer(401))).post(SIGN, json=hook(ALL_MISSING))
    assert "fhir fetch" in caplog.text  # the fetch is logged, by key and outcome
    assert TOKEN not in caplog.text


def test_worksheets_absent_from_prefetch_are_fetched_and_a_failure_costs_nothing() -> None:
    """The optional questionnaireResponses key: fetched with fhirServer when absent; when the
    server fails it, no worksheet is read and nothing is reported missing from the record."""
    request = hook(dict.fromkeys(KEYS, "present"))
    del request["prefetch"]["questionnaireResponses"]
    ehr = fixture_ehr()
    body = app_client(ehr).post(SIGN, json=request).json()
    assert ehr.types() == ["QuestionnaireResponse"]
    query = ehr.requests[0].url
    assert query.params["subject"] == "relapsed-aml-allo-mac"
    assert query.params["status"] == "completed,amended"  # docs/integration.md §7: both are read

    async def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500)

    failed = app_client(mock_ehr(failing)).post(SIGN, json=request).json()
    assert [e["determination"] for e in evaluations(failed)] == [
        e["determination"] for e in evaluations(body)
    ]
    assert "Could not be retrieved" not in json.dumps(failed)


def test_an_amended_worksheet_is_fetched_and_read() -> None:
    """Issue 19 class 8: the fallback query asks for amended worksheets too, so the amended
    Molina worksheet of amended-worksheet is read from the FHIR server (before: status=completed
    only, the worksheet never arrived and Molina needed information)."""
    scenario = find_scenario("amended-worksheet")
    request = build_request(scenario.bundle())
    del request["prefetch"]["questionnaireResponses"]
    point_at_fhir_server(request, SERVER, TOKEN)
    ehr = fixture_ehr()
    body = app_client(ehr).post(SIGN, json=request).json()
    assert ehr.types() == ["QuestionnaireResponse"]
    [molina] = [e for e in evaluations(body) if e["policyId"] == "molina-mcp-210"]
    assert molina["determination"] == "meets-criteria"
    [answered] = [c for c in molina["criteria"] if c["id"] == "molina-dli-planned-prevention"]
    assert answered["evidence"] == ["QuestionnaireResponse/amw-ws"]
