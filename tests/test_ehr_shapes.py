"""Each EHR-shaped scenario agrees with its recommended-form twin, through the real HTTP API.

Issue 12 acceptance: the six EHR shapes (bare payer reference, identifier-only payer, two
Coverages, grade as an Observation, conditioning as medications, order questions) give the same
determination per policy and service as the same patient in our recommended form: with the
payer's Coverage (the policy it routes to) and with the Coverage dropped (all five policies).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cds_service.core import Service
from cds_service.scenarios import build_request, find_scenario, point_at_fhir_server, set_payer
from tests.hooks import SELECT, post_order
from tests.test_fetch import SERVER, TOKEN, app_client, evaluations, fixture_ehr, mock_ehr

# EHR-shaped scenario -> its recommended-form twin
TWINS = {
    "ehr-bare-payer-reference": "relapsed-aml-allo-mac",
    "ehr-identifier-only-payer": "relapsed-aml-allo-mac",
    "ehr-two-coverages": "relapsed-aml-allo-mac",
    "ehr-gvhd-grade-observation": "acute-gvhd-grade-3",
    "ehr-conditioning-medications": "not-high-risk-attested-mac",
    "ehr-order-questions": "molina-high-risk-attestation",
}
BOTH = (Service.DLI, Service.HPC_BOOST)


def _determinations(name: str, hook: str, all_payers: bool) -> set[tuple[str, str, str]]:
    request = build_request(find_scenario(name).bundle(), hook=hook, services=BOTH)
    if all_payers:
        set_payer(request["prefetch"], None)
    # order-sign without a payer it handles is CRD hook-13's 400: post_order compares on select
    client = app_client(None)
    response = (
        post_order(client, request) if hook == "order-sign" else client.post(SELECT, json=request)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return {(e["service"], e["policyId"], e["determination"]) for e in evaluations(body)}


@pytest.mark.parametrize("all_payers", [False, True], ids=["own-coverage", "all-payers"])
@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
@pytest.mark.parametrize("scenario", sorted(TWINS))
def test_ehr_shape_gives_its_twins_determinations(
    scenario: str, hook: str, all_payers: bool
) -> None:
    ehr = _determinations(scenario, hook, all_payers)
    assert ehr == _determinations(TWINS[scenario], hook, all_payers)
    services = {service for service, _, _ in ehr}
    assert services == {"dli", "hpc-boost"}
    if all_payers:
        assert len({policy for _, policy, _ in ehr}) == 5


def test_every_ehr_shaped_scenario_has_a_twin() -> None:
    """A new ehr-* scenario must join the table above."""
    from cds_service.scenarios import load_scenarios

    shaped = {s.id for s in load_scenarios() if s.id.startswith("ehr-")}
    assert shaped == set(TWINS)


MEDICATION_KEYS = ("medication-administrations", "medication-requests")


def _without_medications() -> dict[str, Any]:
    """The conditioning scenario, every payer compared (the RIC / NMA criteria are shown): on
    order-select, as order-sign answers no payer with 400 (CRD hook-13)."""
    request = build_request(find_scenario("ehr-conditioning-medications").bundle(), "order-select")
    set_payer(request["prefetch"], None)
    for key in MEDICATION_KEYS:
        del request["prefetch"][key]
    request["prefetch"]["questionnaireResponses"] = None  # no worksheet answers: not fetched
    return request


def test_absent_medication_keys_are_fetched_from_the_server() -> None:
    request = _without_medications()
    point_at_fhir_server(request, SERVER, TOKEN)
    ehr = fixture_ehr()
    body = app_client(ehr).post(SELECT, json=request).json()
    paths = sorted(r.url.path for r in ehr.requests)
    assert paths == ["/MedicationAdministration", "/MedicationRequest"]
    assert all("rxnorm" in str(r.url.params["code"]) for r in ehr.requests)
    assert "MedicationAdministration/cmd-bu1" in repr(evaluations(body))  # MAC, inferred


def test_without_a_server_absent_medication_keys_are_skipped_not_412() -> None:
    response = app_client(None).post(SELECT, json=_without_medications())
    assert response.status_code == 200, response.text
    assert "inferred from the regimen" not in response.text
    assert "could not be retrieved" not in response.text


def test_a_failed_medication_fetch_is_reported_and_is_never_412() -> None:
    request = _without_medications()
    point_at_fhir_server(request, SERVER, TOKEN)

    async def failing(_: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    response = app_client(mock_ehr(failing)).post(SELECT, json=request)
    assert response.status_code == 200, response.text
    assert "MedicationAdministration data (medication-administrations)" in response.text
