"""Conformance with clients we did not write, over every scenario's responses (the ones the
golden files hold: order-sign and order-select, with its own Coverage and with none; order-sign
without a payer it handles is CRD hook-13's 400), for a CRD 2.0.1 client and a CRD 2.2 client;
and appointment-book and order-dispatch (Inferno's crd_server_appointment_book and
crd_server_order_dispatch groups) for every scenario, both versions (the end of this file).

- Inferno's CRD server checks that apply without Inferno (tests/conformance.py names each test
  id it mirrors), over every 200 response, and the discovery document.
- fhir.resources (R4B, as core/record.py validates what it reads) on every resource of every
  systemActions entry and every form-completion Task.
- HealthChain's CDS Hooks models (github dotimplement/HealthChain, PyPI `healthchain`) read our
  discovery document and every response, and build requests our service must accept.

HealthChain runs in its own virtual environment, made once per test session (and kept under
.cache/ between local runs): every HealthChain release up to 0.16.1 pins fhir-resources<8.2,
httpx<0.28 and fastapi<0.138, and this service needs fhir.resources>=8.3, httpx>=0.28 and
fastapi>=0.165, so it cannot be a dev dependency. tests/healthchain_check.py runs there, reading
JSON on stdin; it documents the HealthChain defects it works around (`autoLaunchable` required,
among others) rather than changing our output. Making the environment takes under a minute,
once (measured 51 s on a loaded 2-core machine, about 23 s of it pip).
Without PyPI the HealthChain tests skip locally and fail in CI (CI=true).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class

from cds_service.core.cards import EVALUATIONS_EXT
from cds_service.core.model import Service
from cds_service.policy_store import Knowledge
from cds_service.scenarios import Scenario, build_request, load_scenarios, service_id
from tests.conformance import (
    COVERAGE_INFO,
    _inferno_valid_url,
    card_types,
    coverage_info_received_problems,
    discovery_problems,
    problems,
    questionnaire_tasks,
    request_problems,
)
from tests.golden import _normalise, responses

SCENARIOS = load_scenarios()
HEALTHCHAIN = "healthchain==0.16.1"
VENV = Path(__file__).parent.parent / ".cache" / HEALTHCHAIN.replace("==", "-")
SCRIPT = Path(__file__).parent / "healthchain_check.py"


@pytest.fixture(scope="module")
def answers(client: TestClient) -> dict[str, dict[str, Any]]:
    """Scenario id -> {"order-sign own-coverage" | "order-sign all-payers" | "order-select
    own-coverage": {"status", "body"}}."""
    return {s.id: responses(client, s) for s in SCENARIOS}


def test_discovery(client: TestClient) -> None:
    """crd_discovery_endpoint_test (200, JSON) and crd_discovery_services_validation."""
    response = client.get("/cds-services", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert discovery_problems(response.json()) == []


def handled(scenario: Scenario, asked: str, knowledge: Knowledge) -> bool:
    """Whether the request carries a Coverage whose payer has a policy here."""
    return asked.endswith("own-coverage") and scenario.payer in {p.id for p in knowledge.policies}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_inferno_service_response_checks(
    answers: dict[str, dict[str, Any]], scenario: Scenario, knowledge: Knowledge
) -> None:
    """crd_service_call_test (200), crd_service_response_validation (with its "systemActions
    must be present" for order-sign, on every 200 answer), crd_card_optional_fields_validation,
    crd_coverage_info_system_action_validation and crd_request_form_completion_response_
    validation. order-sign without a payer this service handles is the 400 + OperationOutcome
    of CRD hook-13, which Inferno does not validate as a response (it counts it unsuccessful)."""
    for asked, answer in answers[scenario.id].items():
        hook = asked.split()[0]
        if hook == "order-sign" and not handled(scenario, asked, knowledge):
            assert answer["status"] == 400, asked
            assert answer["body"]["resourceType"] == "OperationOutcome", asked
            continue
        assert answer["status"] == 200, asked
        assert problems(answer["body"], hook) == [], asked


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_inferno_checks_for_a_crd_2_2_client(
    client: TestClient, scenario: Scenario, knowledge: Knowledge
) -> None:
    """The same checks against the CRD 2.2 profiles and code systems, for a client that sends
    davinci-crd.requestedVersion 2.2 (the version discovery advertises)."""
    for hook in ("order-sign", "order-select"):
        request = build_request(scenario.bundle(), hook, tuple(Service))
        request["extension"] = {"davinci-crd.requestedVersion": "2.2"}
        response = client.post(f"/cds-services/{service_id(hook)}", json=request)
        if hook == "order-sign" and not handled(scenario, "own-coverage", knowledge):
            assert response.status_code == 400
            continue
        assert response.status_code == 200, response.text
        body = response.json()
        assert problems(body, hook, "2.2") == [], hook
        for task in questionnaire_tasks(body, url_check=False):
            get_fhir_model_class("Task").model_validate(task)
        for action in body.get("systemActions", []):
            get_fhir_model_class("ServiceRequest").model_validate(action["resource"])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_inferno_coverage_info_system_action_received(
    answers: dict[str, dict[str, Any]], scenario: Scenario, knowledge: Knowledge
) -> None:
    """crd_coverage_info_system_action_received (required in Inferno's order-sign group): one
    coverage-information update per draft order (CRD resp-29), each a draftOrders entry
    (suggestion_actions_validation); none on order-select, a supporting hook."""
    if not handled(scenario, "own-coverage", knowledge):
        return  # the 400 above: no coverage information without a handled payer
    body = answers[scenario.id]["order-sign own-coverage"]["body"]
    assert "coverage-information" in card_types(body)
    draft = build_request(scenario.bundle(), "order-sign", tuple(Service))["context"]["draftOrders"]
    assert {a["resource"]["id"] for a in body["systemActions"]} == {
        e["resource"]["id"] for e in draft["entry"]
    }
    assert "systemActions" not in answers[scenario.id]["order-select own-coverage"]["body"]


def test_inferno_request_form_completion_tasks_are_checked(
    answers: dict[str, dict[str, Any]],
) -> None:
    """crd_request_form_completion_response_validation finds Tasks to validate (so its pass
    above means something), and Inferno's own identification would have skipped them: its
    valid_url? (Ruby URI.parse) rejects the `url|version` canonical."""
    bodies = [a["body"] for by in answers.values() for a in by.values() if a["status"] == 200]
    tasks = [t for body in bodies for t in questionnaire_tasks(body, url_check=False)]
    assert len(tasks) >= 10
    for task in tasks:  # R4 core, by fhir.resources (the profile: form_completion_problems)
        get_fhir_model_class("Task").model_validate(task)
    assert all("|" in t["input"][0]["valueCanonical"] for t in tasks)
    assert [t for body in bodies for t in questionnaire_tasks(body)] == []
    assert _inferno_valid_url("http://dli-hpc-cds.org/fhir/Questionnaire/molina-dli")
    assert not _inferno_valid_url("http://dli-hpc-cds.org/fhir/Questionnaire/molina-dli|2025")


def test_inferno_required_card_response_types(answers: dict[str, dict[str, Any]]) -> None:
    """Group "Required Card Response Validation" (crd_external_reference_card_validation,
    crd_valid_instructions_card_received, crd_coverage_info_system_action_validation across
    hooks): CRD 2.0.1 servers SHALL demonstrate Coverage Information, External Reference and
    Instructions; some scenario must give each."""
    shown = {t for by in answers.values() for a in by.values() for t in card_types(a["body"])}
    assert shown >= {"coverage-information", "external-reference", "instructions"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_every_system_action_resource_is_valid_fhir(
    answers: dict[str, dict[str, Any]], scenario: Scenario
) -> None:
    for answer in answers[scenario.id].values():
        for action in answer["body"].get("systemActions", []):
            resource = action["resource"]
            model = get_fhir_model_class(resource["resourceType"])
            assert model.model_validate(resource).model_dump(mode="json")["id"] == resource["id"]


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_our_requests_pass_inferno_request_checks(hook: str) -> None:
    """crd_service_request_required_fields_validation and crd_service_request_context_validation
    on the requests our tests and `cds-service fire` send (Inferno checks the tester's)."""
    for scenario in SCENARIOS:
        assert request_problems(build_request(scenario.bundle(), hook)) == [], scenario.id


# --- HealthChain -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def healthchain_python() -> Path:
    """Python of a virtual environment with HealthChain installed (made once, then reused)."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import healthchain.models.responses.cdsresponse"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                HEALTHCHAIN,
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as failure:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"could not install {HEALTHCHAIN} ({failure}): needs PyPI; rerun online")
    return python


@pytest.fixture(scope="module")
def healthchain(
    healthchain_python: Path,
    client: TestClient,
    answers: dict[str, dict[str, Any]],
    primary_answers: dict[tuple[str, str, str], dict[str, Any]],
) -> dict[str, Any]:
    """HealthChain's reading of our discovery document, every response (appointment-book and
    order-dispatch included), and the requests it builds from ours (tests/healthchain_check.py;
    HealthChain has no context model for the two later hooks, so only order-sign / order-select
    requests)."""
    given = {
        "discovery": client.get("/cds-services").json(),
        "responses": [
            a["body"] for by in answers.values() for a in by.values() if a["status"] == 200
        ]
        + [a["body"] for a in primary_answers.values() if a["status"] == 200],
        "requests": [
            build_request(s.bundle(), hook)
            for s in SCENARIOS
            for hook in ("order-sign", "order-select")
        ],
    }
    run = subprocess.run(
        [str(healthchain_python), str(SCRIPT)],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return {"given": given, **json.loads(run.stdout)}


def test_healthchain_reads_our_discovery_document(healthchain: dict[str, Any]) -> None:
    assert healthchain["discovery"] is None


def test_healthchain_reads_every_response(healthchain: dict[str, Any]) -> None:
    errors = [e for e in healthchain["responses"] if e is not None]
    assert (
        len(healthchain["responses"]) == len(healthchain["given"]["responses"]) > 6 * len(SCENARIOS)
    )
    assert errors == []


def test_healthchain_models_see_what_we_sent(
    healthchain_python: Path, healthchain: dict[str, Any]
) -> None:
    """A check that the HealthChain models really validate: a card over 140 characters and a
    system action without a description are refused by them (so a pass above means something)."""
    body = json.loads(json.dumps(healthchain["given"]["responses"][0]))
    body["cards"][0]["summary"] = "x" * 141
    body["systemActions"] = [{"type": "update", "resource": {"resourceType": "ServiceRequest"}}]
    run = subprocess.run(
        [str(healthchain_python), str(SCRIPT)],
        input=json.dumps({"discovery": {}, "responses": [body], "requests": []}),
        capture_output=True,
        text=True,
        check=True,
    )
    error = json.loads(run.stdout)["responses"][0]
    assert "summary" in error and "description" in error


def test_requests_built_with_healthchain_are_answered_as_ours(
    client: TestClient, healthchain: dict[str, Any]
) -> None:
    built, ours = healthchain["requests"], healthchain["given"]["requests"]
    assert len(built) == len(ours) == 2 * len(SCENARIOS)
    for theirs, mine in zip(built, ours, strict=True):
        assert request_problems(theirs) == []
        url = f"/cds-services/{service_id(mine['hook'])}"
        answer, expected = client.post(url, json=theirs), client.post(url, json=mine)
        assert answer.status_code == expected.status_code, answer.text  # 400: hook-13
        assert _normalise(answer.text) == _normalise(expected.text), mine["hookInstance"]


def _first_oth(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of the first coverage-information that has info-needed (to break them)."""
    for action in body["systemActions"]:
        parts: list[dict[str, Any]] = action["resource"]["extension"][-1]["extension"]
        if any(p["url"] == "info-needed" for p in parts):
            return parts
    raise AssertionError("no info-needed in this response")


def _first_task(body: dict[str, Any]) -> dict[str, Any]:
    task: dict[str, Any] = questionnaire_tasks(body, url_check=False)[0]
    return task


def _drop(parts: list[dict[str, Any]], url: str) -> None:
    parts[:] = [p for p in parts if p["url"] != url]


BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "a card typed coverage-info (resp-25)": (
        lambda b: b["cards"][0]["source"]["topic"].update(code="coverage-info"),
        "not the coverage-info response type",
    ),
    "a summary of 140 characters": (
        lambda b: b["cards"][0].update(summary="x" * 140),
        ">= 140",
    ),
    "OTH without a detail": (lambda b: _drop(_first_oth(b), "detail"), "needs a detail"),
    "conditional without info-needed": (
        lambda b: _drop(_first_oth(b), "info-needed"),
        "exactly when something is conditional",
    ),
    "a 2.2-only code for a 2.0.1 client": (
        lambda b: _first_oth(b)[1].update(valueCode="indeterminate"),
        "not in CRD 2.0.1",
    ),
    "a detail category for a 2.0.1 client": (
        lambda b: next(p for p in _first_oth(b) if p["url"] == "detail")["extension"].append(
            {"url": "category", "valueCode": "cat-limitation"}
        ),
        "detail.category",
    ),
    "a system action without a description": (
        lambda b: b["systemActions"][0].pop("description"),
        "description are required",
    ),
    "an order-sign answer without systemActions (crd_service_response_validation)": (
        lambda b: b.pop("systemActions"),
        "systemActions missing",
    ),
    "a 2.0.1 Task without afterCompletion (crd_request_form_completion_response_validation)": (
        lambda b: _first_task(b)["input"].pop(),
        "input[afterCompletion] 1..*",
    ),
    "a Task without authoredOn": (
        lambda b: _first_task(b).pop("authoredOn"),
        "authoredOn missing",
    ),
    "a card topic in the CRD 2.2 system for a 2.0.1 client": (
        lambda b: b["cards"][0]["source"]["topic"].update(
            system="http://terminology.hl7.org/CodeSystem/cdshooks-card-type"
        ),
        "card-type system",
    ),
    "a CRD 2.2 detail code for a 2.0.1 client": (
        lambda b: next(p for p in _first_oth(b) if p["url"] == "detail")["extension"][0].update(
            valueCodeableConcept={
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/crd-coverage-detail",
                        "code": "instructions",
                    }
                ]
            }
        ),
        "detail systems",
    ),
    "a non-draft order": (
        lambda b: b["systemActions"][0]["resource"].update(status="active"),
        "status must be draft",
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_the_checker_finds_what_inferno_would(
    answers: dict[str, dict[str, Any]], breakage: str
) -> None:
    """tests/conformance.py is the oracle above, so it must catch each defect it claims to."""
    body = json.loads(json.dumps(answers["acute-gvhd-ungraded"]["order-sign own-coverage"]["body"]))
    assert problems(body, "order-sign") == []
    breaks, expected = BREAKAGES[breakage]
    breaks(body)
    assert any(expected in p for p in problems(body, "order-sign"))


def test_the_request_checker_finds_what_inferno_would() -> None:
    request = build_request(SCENARIOS[0].bundle(), "order-select")
    request["hookInstance"] = "not-a-uuid"
    request["context"]["userId"] = "Patient/1"
    request["context"]["selections"] = ["ServiceRequest/elsewhere"]
    found = request_problems(request)
    assert [f.split()[0] for f in found] == ["hookInstance", "context.userId", "context.selections"]


# --- appointment-book and order-dispatch (Inferno's crd_server_appointment_book and
# crd_server_order_dispatch groups: the same server tests as order-sign) ----------------------
PRIMARY = ("appointment-book", "order-dispatch")


@pytest.fixture(scope="module")
def primary_answers(client: TestClient) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(scenario id, hook, CRD version) -> the response, with the scenario's own Coverage."""
    found = {}
    for scenario in SCENARIOS:
        for hook in PRIMARY:
            for crd in ("2.0.1", "2.2"):
                request = build_request(scenario.bundle(), hook, tuple(Service))
                if crd == "2.2":
                    request["extension"] = {"davinci-crd.requestedVersion": "2.2"}
                response = client.post(f"/cds-services/{service_id(hook)}", json=request)
                found[scenario.id, hook, crd] = {
                    "status": response.status_code,
                    "body": response.json(),
                    "request": request,
                }
    return found


def _status_draft_only(found: list[str]) -> bool:
    return all(p.endswith("resource.status must be draft (CRD 2.0.1 profile)") for p in found)


@pytest.mark.parametrize("crd", ["2.0.1", "2.2"])
@pytest.mark.parametrize("hook", PRIMARY)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_inferno_primary_hook_group(
    primary_answers: dict[tuple[str, str, str], dict[str, Any]],
    scenario: Scenario,
    hook: str,
    crd: str,
    knowledge: Knowledge,
) -> None:
    """crd_service_call_test, crd_service_response_validation (systemActions present),
    crd_card_optional_fields_validation, crd_coverage_info_system_action_received and
    _validation, crd_request_form_completion_response_validation, for appointment-book and
    order-dispatch, per CRD version; fhir.resources (R4B) on every resource the answer carries.

    One difference is asserted rather than hidden: CRD 2.0.1 profile-servicerequest fixes
    `status = #draft`, and a dispatched order is active (CRD 2.1 dropped the rule, FHIR-45295);
    the service never changes an order's status (CRD resp-37: nothing but the coverage
    information), so a CRD 2.0.1 validator flags exactly that on order-dispatch and nothing else."""
    answer = primary_answers[scenario.id, hook, crd]
    if not handled(scenario, "own-coverage", knowledge):
        assert answer["status"] == 400, answer["body"]
        assert answer["body"]["resourceType"] == "OperationOutcome"
        assert "CRD hook-13" in answer["body"]["issue"][0]["diagnostics"]
        return
    assert answer["status"] == 200, answer["body"]
    body = answer["body"]
    found = problems(body, hook, crd)
    if hook == "order-dispatch" and crd == "2.0.1":
        assert found and _status_draft_only(found), found
    else:
        assert found == [], found
    assert coverage_info_received_problems(body, hook, crd) == []
    for task in questionnaire_tasks(body, url_check=False):
        get_fhir_model_class("Task").model_validate(task)
    for action in body["systemActions"]:
        resource = action["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_primary_hooks_annotate_each_order_once_where_the_version_says(
    primary_answers: dict[tuple[str, str, str], dict[str, Any]],
    scenario: Scenario,
    knowledge: Knowledge,
) -> None:
    """CRD resp-29: one coverage-information update per in-scope resource. appointment-book for a
    CRD 2.0.1 client: each Appointment (as sent, only the extension added); for a CRD 2.2
    client and on order-dispatch: each ServiceRequest the call names (CRD 2.2.1 FHIR-50318)."""
    if not handled(scenario, "own-coverage", knowledge):
        return
    for (sid, hook, crd), answer in primary_answers.items():
        if sid != scenario.id:
            continue
        context = answer["request"]["context"]
        actions = answer["body"]["systemActions"]
        if hook == "appointment-book" and crd == "2.0.1":
            sent = {e["resource"]["id"]: e["resource"] for e in context["appointments"]["entry"]}
            assert {a["resource"]["id"] for a in actions} == set(sent)
            for action in actions:
                resource = dict(action["resource"])
                info = resource.pop("extension")
                assert [x["url"] for x in info] == [COVERAGE_INFO]
                assert resource == sent[resource["id"]]
        else:
            orders = answer["request"]["prefetch"]["serviceRequests"]["entry"]
            assert sorted(a["resource"]["id"] for a in actions) == sorted(
                e["resource"]["id"] for e in orders
            )
            assert {a["resource"]["resourceType"] for a in actions} == {"ServiceRequest"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_primary_hooks_decide_as_order_sign(
    client: TestClient,
    primary_answers: dict[tuple[str, str, str], dict[str, Any]],
    scenario: Scenario,
) -> None:
    """The same evidence rules: every (order, policy) determination and criterion status on
    appointment-book and order-dispatch equals order-sign's for the same orders and record."""
    sign = client.post(
        "/cds-services/dli-hpc-order-sign",
        json=build_request(scenario.bundle(), "order-sign", tuple(Service)),
    )

    def decided(body: dict[str, Any]) -> Any:
        items = [e for c in body.get("cards", []) for e in c["extension"][EVALUATIONS_EXT]]
        return sorted(json.dumps(e, sort_keys=True) for e in items)

    for hook in PRIMARY:
        answer = primary_answers[scenario.id, hook, "2.0.1"]
        assert answer["status"] == sign.status_code
        if sign.status_code == 200:
            assert decided(answer["body"]) == decided(sign.json())
            assert decided(sign.json())  # something was decided


@pytest.mark.parametrize("hook", PRIMARY)
def test_our_primary_hook_requests_pass_inferno_request_checks(hook: str) -> None:
    """crd_service_request_required_fields_validation / _context_validation on the
    appointment-book and order-dispatch requests the tests send."""
    for scenario in SCENARIOS:
        request = build_request(scenario.bundle(), hook, tuple(Service))
        assert request_problems(request) == [], scenario.id


def test_the_primary_hook_checkers_find_what_inferno_would(
    primary_answers: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    """The checks above catch the defects they claim to: an appointment-book update of the
    ServiceRequest for a 2.0.1 client (Inferno looks for the Appointment), an Appointment update
    for a 2.2 client, an Appointment without requestedPeriod, no systemActions, and requests
    that break the hooks' context rules."""
    answers = {k: v for k, v in primary_answers.items() if k[0] == "relapsed-aml-allo-mac"}
    book_2_0 = json.loads(json.dumps(answers["relapsed-aml-allo-mac", "appointment-book", "2.0.1"]))
    book_2_2 = json.loads(json.dumps(answers["relapsed-aml-allo-mac", "appointment-book", "2.2"]))
    as_2_2 = book_2_2["body"]
    assert coverage_info_received_problems(as_2_2, "appointment-book", "2.0.1") != []
    assert any("update of the appointment-book" in p for p in problems(as_2_2, "appointment-book"))
    assert coverage_info_received_problems(book_2_0["body"], "appointment-book", "2.2") != []
    book_2_0["body"]["systemActions"][0]["resource"].pop("requestedPeriod")
    assert any("requestedPeriod" in p for p in problems(book_2_0["body"], "appointment-book"))
    assert any(
        "systemActions missing" in p
        for p in problems({"cards": as_2_2["cards"]}, "order-dispatch", "2.2")
    )
    request = book_2_2["request"]
    request["context"]["appointments"]["entry"][0]["resource"]["status"] = "booked"
    assert request_problems(request) == ["context.appointments entries must be in 'proposed' state"]
    dispatch = answers["relapsed-aml-allo-mac", "order-dispatch", "2.2"]["request"]
    dispatch = json.loads(json.dumps(dispatch))
    dispatch["context"]["fulfillmentTasks"][0]["focus"]["reference"] = "ServiceRequest/other"
    assert request_problems(dispatch) == [
        "context.fulfillmentTasks must each reference a dispatched order"
    ]
