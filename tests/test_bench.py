"""The benchmark's requests (cds_service/bench/workload.py) are what they claim to be, through
the HTTP API: the order-sign is evaluated, the unrelated order answered with no cards."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds_service.bench.run import scale_curve
from cds_service.bench.workload import order_sign_request, resource_count, unrelated_order_request

SIGN = "/cds-services/dli-hpc-order-sign"


def test_the_unrelated_order_is_answered_with_no_cards_on_the_same_prefetch(
    client: TestClient,
) -> None:
    related, unrelated = order_sign_request(300), unrelated_order_request(300)
    assert unrelated["prefetch"] == related["prefetch"]
    assert resource_count(unrelated) == 300
    answered = client.post(SIGN, json=unrelated)
    assert answered.status_code == 200
    assert answered.json() == {"cards": []}
    evaluated = client.post(SIGN, json=related)
    assert evaluated.status_code == 200 and evaluated.json()["cards"]


def test_the_scale_curve_fits_a_line_and_shows_a_step_between_sizes() -> None:
    flat = scale_curve({30: 1.03, 300: 1.3, 1500: 2.5, 5000: 6.0})
    assert flat["per_resource_us"] == 1.0 and flat["fixed_ms"] == 1.0
    assert set(flat["marginal_us"].values()) == {1.0}
    stepped = scale_curve({30: 1.03, 300: 1.3, 1500: 2.5, 5000: 16.0})
    assert stepped["marginal_us"]["1500-5000"] > 3 * stepped["marginal_us"]["300-1500"]


def test_the_validation_floor_validates_exactly_what_the_answer_rests_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tools/validation_floor.py's lower bound is honest only if it validates the resources the
    service's answer rests on: the eager ones (Coverage, the relevant Conditions and Procedures)
    and the latest blood counts a fact read, not the hundreds skipped."""
    from cds_service.bench.floor import create_validation_floor_app, deciding_resources

    request = order_sign_request(300)
    found = deciding_resources(request)
    types = sorted(request["prefetch"][k]["entry"][i]["resource"]["resourceType"] for k, i, _ in found)
    assert types.count("Coverage") == 1 and "Observation" in types and "Condition" in types
    assert 5 <= len(found) <= 20  # of 300 resources
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    app = create_validation_floor_app(durable_record=True)
    with TestClient(app) as floor:
        assert floor.post(SIGN, json=request).status_code == 200
