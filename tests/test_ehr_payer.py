"""The payer as EHRs record it: a bare `Organization/{id}` payor, through the real HTTP API.

Acceptance (issue 12): with prefetch (the Organization included by `_include=Coverage:payor`),
with prefetch that lacks it, and with no prefetch at all (everything, the Organization included,
read from the fixture FHIR server), the scenario routes to Molina and gets coverage information,
with the same evaluations as its recommended-form twin (the payer contained in the Coverage).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cds_service.scenarios import build_request, find_scenario, point_at_fhir_server
from tests.test_fetch import SERVER, SIGN, TOKEN, app_client, evaluations, fixture_ehr, mock_ehr

BARE = find_scenario("ehr-bare-payer-reference").bundle()
TWIN = find_scenario("relapsed-aml-allo-mac").bundle()


def _routed(body: dict[str, Any]) -> set[str]:
    return {e["policyId"] for e in evaluations(body)}


def _twin_answer() -> dict[str, Any]:
    response = app_client(None).post(SIGN, json=build_request(TWIN))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _same_as_twin(body: dict[str, Any]) -> None:
    twin = _twin_answer()
    assert _routed(body) == {"molina-mcp-210"}
    assert repr(evaluations(body)).replace("bpr-", "ram-").replace(
        "ehr-bare-payer-reference", "relapsed-aml-allo-mac"
    ) == repr(evaluations(twin))
    action = body["systemActions"][0]["resource"]
    assert action["resourceType"] == "ServiceRequest"
    assert any("coverage-information" in e["url"] for e in action["extension"])


def test_prefetch_with_included_organization() -> None:
    request = build_request(BARE)
    kinds = [e["resource"]["resourceType"] for e in request["prefetch"]["coverage"]["entry"]]
    assert kinds == ["Coverage", "Organization"]
    response = app_client(None).post(SIGN, json=request)
    assert response.status_code == 200, response.text
    _same_as_twin(response.json())


def test_prefetch_without_the_organization_reads_it_from_the_server() -> None:
    request = build_request(BARE)
    coverage = request["prefetch"]["coverage"]
    coverage["entry"] = coverage["entry"][:1]  # an EHR that ignored _include
    request["prefetch"]["questionnaireResponses"] = None  # no worksheets: nothing else to fetch
    point_at_fhir_server(request, SERVER, TOKEN)
    ehr = fixture_ehr()
    response = app_client(ehr).post(SIGN, json=request)
    assert response.status_code == 200, response.text
    assert [r.url.path for r in ehr.requests] == ["/Organization/bpr-payer"]
    assert ehr.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    _same_as_twin(response.json())


def test_no_prefetch_fetches_everything_and_the_payer() -> None:
    request = build_request(BARE, prefetch_keys=())
    point_at_fhir_server(request, SERVER, TOKEN)
    ehr = fixture_ehr()
    response = app_client(ehr).post(SIGN, json=request)
    assert response.status_code == 200, response.text
    coverage_query = next(r for r in ehr.requests if r.url.path == "/Coverage")
    assert coverage_query.url.params["_include"] == "Coverage:payor"
    # the Organization came with the Coverage: no separate read
    assert "/Organization/bpr-payer" not in [r.url.path for r in ehr.requests]
    _same_as_twin(response.json())


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_a_failed_payer_read_says_why(hook: str) -> None:
    """order-select compares every payer; order-sign (a primary CRD hook) answers 400 (CRD
    hook-13: no payer it handles), naming the failed read."""
    request = build_request(BARE, hook)
    coverage = request["prefetch"]["coverage"]
    coverage["entry"] = coverage["entry"][:1]
    point_at_fhir_server(request, SERVER, TOKEN)

    async def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})

    response = app_client(mock_ehr(missing)).post(f"/cds-services/dli-hpc-{hook}", json=request)
    if hook == "order-sign":
        assert response.status_code == 400, response.text
        assert "its payer could not be read" in response.json()["issue"][0]["diagnostics"]
        assert "HTTP 404" in response.text
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(_routed(body)) == 5
    assert "systemActions" not in body
    assert "Organization data (payer): the EHR's FHIR server answered HTTP 404" in response.text


def test_without_a_server_the_bare_reference_is_an_unrecognised_payer() -> None:
    request = build_request(BARE)
    coverage = request["prefetch"]["coverage"]
    coverage["entry"] = coverage["entry"][:1]
    response = app_client(None).post(SIGN, json=request)  # CRD hook-13: no payer it handles
    assert response.status_code == 400 and "names a payer whose policy" in response.text
    request = build_request(BARE, "order-select")
    coverage = request["prefetch"]["coverage"]
    coverage["entry"] = coverage["entry"][:1]
    response = app_client(None).post("/cds-services/dli-hpc-order-select", json=request)
    assert response.status_code == 200, response.text
    assert len(_routed(response.json())) == 5


# EHR-shaped scenario -> (its short tag, its recommended-form twin, the twin's tag)
TWINS = {
    "ehr-bare-payer-reference": ("bpr", "relapsed-aml-allo-mac", "ram"),
    "ehr-identifier-only-payer": ("iop", "relapsed-aml-allo-mac", "ram"),
    "ehr-two-coverages": ("tcv", "relapsed-aml-allo-mac", "ram"),
}


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
@pytest.mark.parametrize("scenario", sorted(TWINS))
def test_ehr_shape_agrees_with_its_twin(scenario: str, hook: str) -> None:
    """Through the HTTP API: the same evaluations (criteria, statuses, evidence) as the twin."""
    tag, twin, twin_tag = TWINS[scenario]
    path = SIGN if hook == "order-sign" else SIGN.replace("order-sign", "order-select")
    bodies = []
    for name in (scenario, twin):
        request = build_request(find_scenario(name).bundle(), hook=hook)
        response = app_client(None).post(path, json=request)
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    ehr, recommended = (repr(evaluations(b)) for b in bodies)
    assert ehr.replace(f"{tag}-", f"{twin_tag}-").replace(scenario, twin) == recommended
    assert _routed(bodies[0]) == {"molina-mcp-210"}


def test_two_coverages_the_card_says_which_decided() -> None:
    request = build_request(find_scenario("ehr-two-coverages").bundle())
    body = app_client(None).post(SIGN, json=request).json()
    assert all("the patient's coverage (coverage order 1), the first of 2 in force" in card["detail"] for card in body["cards"])
    coverage = body["systemActions"][0]["resource"]["extension"][-1]["extension"]
    assert {"url": "coverage", "valueReference": {"reference": "Coverage/tcv-cov"}} in coverage


def test_a_payor_id_that_is_not_a_fhir_id_is_never_put_in_a_url() -> None:
    request = build_request(BARE)
    coverage = request["prefetch"]["coverage"]
    coverage["entry"] = coverage["entry"][:1]
    coverage["entry"][0]["resource"]["payor"] = [{"reference": "Organization/x?_format=xml"}]
    request["prefetch"]["questionnaireResponses"] = None
    point_at_fhir_server(request, SERVER, TOKEN)
    ehr = fixture_ehr()
    response = app_client(ehr).post(SIGN, json=request)
    assert response.status_code == 400, response.text  # no payer it handles (CRD hook-13)
    assert ehr.requests == []
