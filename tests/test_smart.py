"""The SMART pieces over HTTP: the fixture EHR's authorization server (discovery, EHR launch,
authorize + token with PKCE, patient-scoped tokens) and the app's case endpoint."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from cds_service.fixture_server import SESSION_TAG, create_fixture_server
from cds_service.scenarios import build_request, find_scenario, resources

EHR_TOKEN = "ehr-own-token"
BASE = "http://127.0.0.1:8219"
REDIRECT = "http://127.0.0.1:8218/smart/index.html"
PATIENT = "relapsed-aml-allo-mac"


@pytest.fixture
def ehr() -> TestClient:
    return TestClient(create_fixture_server(EHR_TOKEN), base_url=BASE)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize_params(challenge: str, launch: str | None = None) -> dict[str, str]:
    params = {
        "response_type": "code", "client_id": "dli-hpc-cds-app", "redirect_uri": REDIRECT,
        "scope": "launch openid fhirUser patient/*.read patient/QuestionnaireResponse.write",
        "state": "s-1", "aud": BASE, "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    if launch:
        params["launch"] = launch
    return params


def _launch(ehr: TestClient, session: str | None = "sess-1") -> str:
    context = {"patient": PATIENT, "orders": ["ServiceRequest/ram-dli"], "session": session}
    answer = ehr.post("/smart/launch-context", json=context,
                      headers={"Authorization": f"Bearer {EHR_TOKEN}"})  # fmt: skip
    assert answer.status_code == 200
    return str(answer.json()["launch"])


def _code(ehr: TestClient, params: dict[str, str], decision: str = "approve") -> str:
    page = ehr.get("/smart/authorize", params=params)
    assert page.status_code == 200 and "Authorize" in page.text
    answer = ehr.post("/smart/authorize", params=params, data={"decision": decision},
                      follow_redirects=False)  # fmt: skip
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["s-1"]
    return query["code"][0]


def _token(ehr: TestClient, code: str, verifier: str) -> Any:
    return ehr.post("/smart/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": "dli-hpc-cds-app", "code_verifier": verifier,
    })  # fmt: skip


def test_discovery_says_pkce_and_launch(ehr: TestClient) -> None:
    config = ehr.get("/.well-known/smart-configuration").json()  # no token needed
    assert config["authorization_endpoint"] == f"{BASE}/smart/authorize"
    assert config["token_endpoint"] == f"{BASE}/smart/token"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"launch-ehr", "launch-standalone", "client-public"} <= set(config["capabilities"])


def test_ehr_launch_gives_a_patient_token_that_reads_only_that_patient(ehr: TestClient) -> None:
    verifier, challenge = _pkce()
    code = _code(ehr, _authorize_params(challenge, _launch(ehr)))
    answer = _token(ehr, code, verifier)
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["patient"] == PATIENT
    assert token["fhirContext"] == [{"reference": "ServiceRequest/ram-dli"}]
    assert answer.headers["cache-control"] == "no-store"
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    own = ehr.get(f"/Condition?patient={PATIENT}", headers=bearer)
    assert own.status_code == 200 and own.json()["total"] >= 1
    assert ehr.get("/Condition?patient=prophylactic-dli-ric", headers=bearer).status_code == 403
    assert ehr.get("/Condition", headers=bearer).status_code == 403
    assert ehr.get("/Patient/prophylactic-dli-ric", headers=bearer).status_code == 404
    assert ehr.get("/ServiceRequest/ram-dli", headers=bearer).status_code == 200
    # the worksheet it writes is tagged with the launch's sandbox session
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed",
          "subject": {"reference": f"Patient/{PATIENT}"}}  # fmt: skip
    stored = ehr.post("/QuestionnaireResponse", json=qr, headers=bearer)
    assert stored.status_code == 201
    assert stored.json()["meta"]["tag"] == [{"system": SESSION_TAG, "code": "sess-1"}]
    other = {**qr, "subject": {"reference": "Patient/prophylactic-dli-ric"}}
    assert ehr.post("/QuestionnaireResponse", json=other, headers=bearer).status_code == 403
    # an app token cannot open launches (that is the EHR's own call)
    assert ehr.post("/smart/launch-context", json={"patient": PATIENT},
                    headers=bearer).status_code == 401  # fmt: skip


def test_pkce_is_required_and_checked(ehr: TestClient) -> None:
    verifier, challenge = _pkce()
    params = _authorize_params(challenge, _launch(ehr))
    without = {k: v for k, v in params.items() if not k.startswith("code_challenge")}
    assert ehr.get("/smart/authorize", params=without).status_code == 400
    code = _code(ehr, params)
    wrong = _token(ehr, code, "x" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert _token(ehr, code, verifier).status_code == 200
    assert _token(ehr, code, verifier).status_code == 400  # a code is used once


def test_bad_authorize_requests_are_refused(ehr: TestClient) -> None:
    _, challenge = _pkce()
    params = _authorize_params(challenge, _launch(ehr))
    assert ehr.get("/smart/authorize", params={**params, "aud": "http://evil.example"}).status_code == 400
    assert ehr.get("/smart/authorize", params={**params, "launch": "nope"}).status_code == 400
    assert ehr.get("/smart/authorize", params={**params, "client_id": "other"}).status_code == 400
    bad = {**params, "redirect_uri": "http://evil.example/cb"}
    assert ehr.get("/smart/authorize", params=bad).status_code == 400


def test_bad_launch_and_token_requests_are_4xx(ehr: TestClient) -> None:
    own = {"Authorization": f"Bearer {EHR_TOKEN}"}
    assert ehr.post("/smart/launch-context", content=b"{not json", headers=own).status_code == 400
    assert ehr.post("/smart/launch-context", json={"orders": []}, headers=own).status_code == 400
    assert ehr.post("/smart/token", content=b"\xff\x00").status_code == 400
    assert ehr.post("/smart/token", data={"grant_type": "password"}).status_code in (400, 401)
    assert ehr.post("/smart/authorize", data={"decision": "approve"}).status_code == 400


def test_denied_consent_gives_no_code(ehr: TestClient) -> None:
    _, challenge = _pkce()
    params = _authorize_params(challenge, _launch(ehr))
    ehr.get("/smart/authorize", params=params)
    answer = ehr.post("/smart/authorize", params=params, data={"decision": "deny"},
                      follow_redirects=False)  # fmt: skip
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["access_denied"]


def test_standalone_launch_picks_the_patient(ehr: TestClient) -> None:
    verifier, challenge = _pkce()
    params = _authorize_params(challenge)
    params["scope"] = "launch/patient patient/*.read"
    assert "<select name='patient'" in ehr.get("/smart/authorize", params=params).text
    answer = ehr.post("/smart/authorize", params=params,
                      data={"decision": "approve", "patient": PATIENT}, follow_redirects=False)  # fmt: skip
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    token = _token(ehr, code, verifier).json()
    assert token["patient"] == PATIENT and "fhirContext" not in token


def _case_body(scenario_id: str) -> dict[str, Any]:
    bundle = find_scenario(scenario_id).bundle()
    request = build_request(bundle, "order-sign")
    orders = [e["resource"] for e in request["context"]["draftOrders"]["entry"]]
    record = [{"resource": r} for r in resources(bundle) if r["resourceType"] != "ServiceRequest"]
    return {"orders": orders, "record": {"resourceType": "Bundle", "type": "collection",
                                         "entry": record}}  # fmt: skip


def test_the_case_endpoint_answers_the_whole_case(client: TestClient) -> None:
    answer = client.post("/smart/api/case", json=_case_body("relapsed-aml-allo-mac"))
    assert answer.status_code == 200, answer.text
    case = answer.json()
    assert len(case["comparison"]) == 5
    assert [e["payer"] for e in case["ownPayer"]] == ["Molina Healthcare"]
    kinds = [e["kind"] for e in case["timeline"]]
    assert {"transplant", "chimerism", "relapse", "order"} <= set(kinds)
    chimerism = [e["value"] for e in case["timeline"] if e["kind"] == "chimerism"]
    assert len(chimerism) >= 2  # every value over time, not only the latest
    molina = case["ownPayer"][0]
    assert molina["determination"] == "meets-criteria"
    statuses = {c["status"] for c in molina["criteria"]}
    assert "not-needed" in statuses
    first = next(c for c in molina["criteria"] if c["evidence"])
    assert "/" not in first["evidence"][0].split(" on ")[0]  # clinical words, ids apart
    assert first["integrator"]["evidence"][0].count("/") == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [({"orders": "x"}, 400), ({"orders": [], "record": {"resourceType": "Bundle"}}, 400),
     ([1, 2], 400)],
)  # fmt: skip
def test_the_case_endpoint_refuses_bad_input(client: TestClient, body: Any, status: int) -> None:
    assert client.post("/smart/api/case", json=body).status_code == status


def test_the_docs_page_needs_no_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(?:src|href)=['\"]https?://", page.text), page.text  # nothing external
    for asset in re.findall(r"(?:src|href)=['\"](/smart/static/[^'\"]+)", page.text):
        assert client.get(asset).status_code == 200, asset


def test_the_app_is_served_without_a_cdn(client: TestClient) -> None:
    for path in ("/smart/launch", "/smart/index.html"):
        page = client.get(path)
        assert page.status_code == 200
        assert "http" not in page.text.replace('"/smart/static', "")  # every asset is ours
    assert client.get("/smart/static/app.js").status_code == 200


def test_the_case_does_not_depend_on_the_order_of_the_record(client: TestClient) -> None:
    body = _case_body("acute-gvhd-grade-3")
    forward = client.post("/smart/api/case", json=body).json()
    body["record"]["entry"].reverse()
    body["orders"].reverse()
    backward = client.post("/smart/api/case", json=body).json()
    assert forward["timeline"] == backward["timeline"]
    assert {e["kind"] for e in forward["timeline"]} >= {"transplant", "gvhd", "anc", "order"}
    key = lambda e: (e["order"], e["policyId"])  # noqa: E731
    assert sorted(forward["comparison"], key=key) == sorted(backward["comparison"], key=key)
