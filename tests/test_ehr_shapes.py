"""Each EHR-shaped scenario agrees with its recommended-form twin, through the real HTTP API.

Issue 12 acceptance: the six EHR shapes (bare payer reference, identifier-only payer, two
Coverages, grade as an Observation, conditioning as medications, order questions) give the same
determination per policy and service as the same patient in our recommended form: with the
payer's Coverage (the policy it routes to) and with the Coverage dropped (all five policies).
"""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.core import Service
from cds_service.scenarios import build_request, find_scenario, set_payer
from tests.test_fetch import SIGN, app_client, evaluations

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
    path = SIGN if hook == "order-sign" else SIGN.replace("order-sign", "order-select")
    response = app_client(None).post(path, json=request)
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
