"""Policy versions by date: the version in force on the date of service decides, and the card,
the CRD coverage information and the audit record name it; `cds-service policy diff` says what
changed between two versions.

Centene CP.MP.101's revision log documents the 02/23 revision "Added contraindication criteria
I.C.1. through 4." (cards/centene-cp.mp.101.yaml `earlier_versions`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cds_service.api.app import create_app
from cds_service.audit.store import AuditFilter
from cds_service.cli import app as cli
from cds_service.core.cards import COVERAGE_INFO_URL
from cds_service.core.model import Service
from cds_service.core.policy import Policy
from cds_service.core.policy_versions import in_force, versions
from cds_service.policy_store import Knowledge, PolicyLoadError, bundled, load_policy
from cds_service.scenarios import build_request, find_scenario
from cds_service.settings import Settings

CENTENE = "centene-cp.mp.101"
CONTRAINDICATIONS = "centene-dli-no-contraindications"
SIGN = "/cds-services/dli-hpc-order-sign"
runner = CliRunner()


def centene_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((bundled("cards") / f"{CENTENE}.yaml").read_text())
    return data


def node_ids(policy: Policy) -> set[str]:
    return {n.id for service in Service if (rule := policy.rule(service)) for n in rule.walk()}


# --- which version is in force ---------------------------------------------------------------
@pytest.fixture(scope="module")
def centene(knowledge: Knowledge) -> Policy:
    return next(p for p in knowledge.policies if p.id == CENTENE)


@pytest.mark.parametrize(
    ("day", "version"),
    [
        (date(2022, 10, 1), "2022-10"),
        (date(2023, 1, 31), "2022-10"),
        (date(2023, 2, 1), "2023-02"),
        (date(2026, 3, 1), "2023-02"),
        (date(2019, 5, 1), "2022-10"),  # before every known version: the oldest known
    ],
)
def test_the_version_in_force_on_the_date_of_service(
    centene: Policy, day: date, version: str
) -> None:
    assert in_force(centene, day).policy.version == version


I_C = {CONTRAINDICATIONS, "centene-dli-no-uncontrolled-infection", "centene-dli-no-nonadherence",
       "centene-dli-no-support-gap", "centene-dli-no-active-substance-use"}  # fmt: skip


def test_the_earlier_version_is_the_current_one_without_what_02_23_added(centene: Policy) -> None:
    current, earlier = versions(centene)
    assert node_ids(current) - node_ids(earlier) == I_C
    assert node_ids(earlier) < node_ids(current)
    assert earlier.policy.in_force_until == date(2023, 2, 1)
    assert current.policy.in_force_until is None
    assert earlier.earlier_versions == [] and earlier.id == current.id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["earlier_versions"][0].update(omits=["no-such-criterion"]), "omits unknown"),
        (lambda d: d["policy"].pop("effective_from"), "need policy.effective_from"),
        (lambda d: d["earlier_versions"][0].update(effective_from="2024-01-01"), "must start before"),
        (lambda d: d["earlier_versions"][0].update(version="2023-02"), "must differ"),
    ],
)
def test_bad_version_lists_are_load_errors(tmp_path: Path, change: Any, message: str) -> None:
    data = centene_data()
    change(data)
    path = tmp_path / f"{CENTENE}.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyLoadError, match=message):
        load_policy(path)


# --- through the HTTP API ---------------------------------------------------------------------
@pytest.fixture
def revised_later(knowledge: Knowledge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """The app with Centene's current version taking effect on 2026-06-01: the fixtures' orders
    (authored in early 2026) fall under the 2022-10 version."""
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    data = centene_data()
    data["policy"]["effective_from"] = "2026-06-01"
    moved = Policy.model_validate(data)
    policies = tuple(moved if p.id == CENTENE else p for p in knowledge.policies)
    app = create_app(Settings(), Knowledge(policies, knowledge.thresholds))
    yield app
    app.state.audit.close()


def smoker(service_day: str | None = None) -> dict[str, Any]:
    request = build_request(find_scenario("current-smoker").bundle())
    if service_day is not None:
        for entry in request["context"]["draftOrders"]["entry"]:
            entry["resource"]["occurrenceDateTime"] = service_day
    return copy.deepcopy(request)


def evaluation(body: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = body["cards"][0]["extension"]["dli-hpc-cds.evaluations"][0]
    return item


def coverage_reasons(body: dict[str, Any]) -> list[str]:
    resource = body["systemActions"][0]["resource"]
    info = next(x for x in resource["extension"] if x["url"] == COVERAGE_INFO_URL)
    return [p["valueCodeableConcept"]["text"] for p in info["extension"] if p["url"] == "reason"]


def test_an_order_before_the_revision_is_judged_and_named_under_the_earlier_version(
    revised_later: FastAPI,
) -> None:
    client = TestClient(revised_later)
    before = client.post(SIGN, json=smoker()).json()
    after = client.post(SIGN, json=smoker("2026-07-01")).json()

    assert evaluation(after)["determination"] == "does-not-meet-criteria"  # I.C.4: smoker
    assert evaluation(before)["determination"] == "meets-criteria"  # no I.C before 02/23
    criteria = {c["id"] for c in evaluation(before)["criteria"]}
    assert CONTRAINDICATIONS not in criteria
    assert "Revision of 10/22" in before["cards"][0]["detail"]
    assert "Revision of 10/22" not in after["cards"][0]["detail"]
    assert any("CP.MP.101 version 2022-10" in r for r in coverage_reasons(before))
    assert not any("version 2022-10" in r for r in coverage_reasons(after))

    assert revised_later.state.audit.flush()
    rows = revised_later.state.audit.ready_store().decisions(AuditFilter())
    assert [r.evaluations[0].policy_version for r in rows] == ["2022-10", "2023-02"]


def test_current_answers_do_not_change_for_orders_after_the_revision(
    knowledge: Knowledge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    app = create_app(Settings(), knowledge)
    try:
        body = TestClient(app).post(SIGN, json=smoker()).json()
    finally:
        app.state.audit.close()
    assert evaluation(body)["determination"] == "does-not-meet-criteria"
    assert not any("version" in r for r in coverage_reasons(body))


# --- the CLI ----------------------------------------------------------------------------------
def test_policy_versions_lists_each_version_with_its_dates() -> None:
    result = runner.invoke(cli, ["policy", "versions", CENTENE])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2023-02") and "from 2023-02-01" in lines[0]
    assert lines[1].startswith("2022-10") and "until 2023-02-01" in lines[1]


def test_policy_diff_names_the_changed_criteria_and_the_fixtures_whose_answers_change() -> None:
    result = runner.invoke(cli, ["policy", "diff", CENTENE, "2022-10", "2023-02", "--json"])
    assert result.exit_code == 0, result.output
    diff = json.loads(result.stdout)
    added = {c["id"] for c in diff["criteria"] if c["change"] == "added"}
    assert CONTRAINDICATIONS in added and "centene-dli-no-active-substance-use" in added
    assert all(c["change"] == "added" for c in diff["criteria"])
    changed = {(a["scenario"], a["service"]): (a["before"], a["after"]) for a in diff["answers"]}
    assert changed["current-smoker", "dli"] == ("meets-criteria", "does-not-meet-criteria")
    assert all(service == "dli" for _, service in changed)  # I.C is a DLI criterion
    assert diff["fixturesCompared"] > len(changed)

    table = runner.invoke(cli, ["policy", "diff", CENTENE, "2022-10", "2023-02"])
    assert table.exit_code == 0 and "current-smoker" in table.stdout


def test_policy_diff_refuses_unknown_policies_and_versions() -> None:
    unknown_version = runner.invoke(cli, ["policy", "diff", CENTENE, "2019-01", "2023-02"])
    assert unknown_version.exit_code == 2 and "2022-10" in unknown_version.output
    unknown_policy = runner.invoke(cli, ["policy", "versions", "no-such-policy"])
    assert unknown_policy.exit_code == 2 and CENTENE in unknown_policy.output
