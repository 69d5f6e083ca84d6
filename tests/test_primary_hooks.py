"""appointment-book and order-dispatch through the HTTP API: orders named by reference, resolved
from prefetch or the EHR's FHIR server; what is not evaluated, and why; bad contexts."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cds_service.core.cards import EVALUATIONS_EXT, NOT_EVALUATED_EXT
from cds_service.core.model import Service
from cds_service.scenarios import build_request, find_scenario, point_at_fhir_server
from tests.conformance import problems
from tests.test_fetch import SERVER, TOKEN, app_client, fixture_ehr, mock_ehr

BOOK = "/cds-services/dli-hpc-appointment-book"
DISPATCH = "/cds-services/dli-hpc-order-dispatch"
SCENARIO = find_scenario("relapsed-aml-allo-mac")  # Molina; DLI and HPC boost orders
PATHS = {"appointment-book": BOOK, "order-dispatch": DISPATCH}
HOOKS = tuple(PATHS)


def request(hook: str, services: tuple[Service, ...] = tuple(Service)) -> dict[str, Any]:
    return build_request(SCENARIO.bundle(), hook, services)


def evaluated(body: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (e["order"], e["policyId"], e["determination"])
        for card in body["cards"]
        for e in card["extension"].get(EVALUATIONS_EXT, [])
    }


def not_evaluated(body: dict[str, Any]) -> list[dict[str, str]]:
    lists = [c["extension"].get(NOT_EVALUATED_EXT) or [] for c in body["cards"]]
    assert lists and all(x == lists[0] for x in lists), "every card names the same orders"
    return lists[0]


def assert_outcome(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert fragment in body["issue"][0]["diagnostics"], body


def other_patients_order(order: dict[str, Any], new_id: str) -> dict[str, Any]:
    return {**copy.deepcopy(order), "id": new_id, "subject": {"reference": "Patient/someone-else"}}


@pytest.mark.parametrize("hook", HOOKS)
def test_the_orders_are_read_from_the_fhir_server_when_not_prefetched(hook: str) -> None:
    """Without the `serviceRequests` prefetch the service reads `ServiceRequest?_id=` from
    fhirServer with the hook's token, and decides exactly as with it."""
    with_prefetch = request(hook)
    without = copy.deepcopy(with_prefetch)
    without["prefetch"].pop("serviceRequests")
    point_at_fhir_server(without, SERVER, TOKEN)
    ehr = fixture_ehr()
    with app_client(ehr) as client:
        fetched = client.post(PATHS[hook], json=without)
        prefetched = client.post(PATHS[hook], json=with_prefetch)
    assert fetched.status_code == prefetched.status_code == 200, fetched.text
    read = [r for r in ehr.requests if r.url.path.endswith("/ServiceRequest")]
    assert [r.url.params["_id"] for r in read] == ["ram-dli,ram-hpc"]
    assert read[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert evaluated(fetched.json()) == evaluated(prefetched.json())
    assert len(evaluated(fetched.json())) == 2
    assert len(fetched.json()["systemActions"]) == 2


@pytest.mark.parametrize("hook", HOOKS)
def test_orders_neither_prefetched_nor_fetchable_are_a_412(client: TestClient, hook: str) -> None:
    call = request(hook)
    call["prefetch"].pop("serviceRequests")
    assert_outcome(client.post(PATHS[hook], json=call), 412, "no fhirServer to read them from")


def _point_at_missing_order(hook: str, call: dict[str, Any]) -> None:
    if hook == "appointment-book":
        entry = call["context"]["appointments"]["entry"][0]["resource"]
        entry["basedOn"] = [{"reference": "ServiceRequest/no-such-order"}]
    else:
        call["context"]["dispatchedOrders"] = ["ServiceRequest/no-such-order"]
        call["context"].pop("fulfillmentTasks")


@pytest.mark.parametrize("hook", HOOKS)
def test_an_order_the_ehr_does_not_have_is_named_not_guessed(hook: str) -> None:
    """The fixture server answers an empty searchset: one card says which order was not
    checked and why (the reference in the machine-readable extension), and no coverage
    information is made up for it."""
    call = request(hook, (Service.DLI,))
    call["prefetch"].pop("serviceRequests")
    _point_at_missing_order(hook, call)
    point_at_fhir_server(call, SERVER, TOKEN)
    with app_client(fixture_ehr()) as client:
        response = client.post(PATHS[hook], json=call)
    assert response.status_code == 200, response.text
    body = response.json()
    assert not_evaluated(body) == [
        {"reference": "ServiceRequest/no-such-order", "reason": "not-in-ehr"}
    ]
    assert "systemActions" not in body
    card = body["cards"][0]
    assert card["detail"].startswith("**Check the order:**")
    assert "no-such-order" not in card["detail"] + card["summary"]  # ids: machine-readable only
    assert "1 order is not in the EHR" in card["detail"]


@pytest.mark.parametrize("hook", HOOKS)
def test_an_order_the_ehr_fails_to_return_is_unreadable_not_a_500(hook: str) -> None:
    async def broken(_: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    call = request(hook)
    call["prefetch"].pop("serviceRequests")
    point_at_fhir_server(call, SERVER, TOKEN)
    with app_client(mock_ehr(broken)) as client:
        response = client.post(PATHS[hook], json=call)
    assert response.status_code == 200, response.text
    assert {n["reason"] for n in not_evaluated(response.json())} == {"unreadable"}
    assert len(not_evaluated(response.json())) == 2


@pytest.mark.parametrize("hook", HOOKS)
def test_another_patients_order_is_ignored_and_named(client: TestClient, hook: str) -> None:
    """The booked / dispatched DLI order is evaluated; an HPC boost order the EHR returns for
    another patient is not (neither as an order nor as evidence), and every card says so."""
    call = request(hook)
    orders = call["prefetch"]["serviceRequests"]["entry"]
    hpc = next(e for e in orders if e["resource"]["id"] == "ram-hpc")
    hpc["resource"] = other_patients_order(hpc["resource"], "ram-hpc")
    response = client.post(PATHS[hook], json=call)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {o for o, _, _ in evaluated(body)} == {"ServiceRequest/ram-dli"}
    assert not_evaluated(body) == [{"reference": "ServiceRequest/ram-hpc", "reason": "other-patient"}]
    assert all("1 order belongs to another patient" in c["detail"] for c in body["cards"])
    assert [a["resource"]["id"] for a in body["systemActions"]] == [
        "ram-dli-infusion" if hook == "appointment-book" else "ram-dli"
    ]
    if hook == "appointment-book":
        assert problems(body, hook) == []


@pytest.mark.parametrize("hook", HOOKS)
def test_an_order_given_twice_differently_is_not_evaluated(client: TestClient, hook: str) -> None:
    """No answer depends on the order of the entries: two versions of one order -> neither."""
    call = request(hook, (Service.DLI,))
    bundle = call["prefetch"]["serviceRequests"]
    changed = copy.deepcopy(bundle["entry"][0])
    changed["resource"]["orderDetail"] = [{"text": "different donor"}]
    for entries in ([*bundle["entry"], changed], [changed, *bundle["entry"]]):
        call["prefetch"]["serviceRequests"] = {**bundle, "entry": entries}
        body = client.post(PATHS[hook], json=call).json()
        assert not_evaluated(body) == [{"reference": "ServiceRequest/ram-dli", "reason": "conflicting"}]


@pytest.mark.parametrize("hook", HOOKS)
def test_an_order_that_is_not_dli_or_hpc_gets_no_cards(client: TestClient, hook: str) -> None:
    """Like an unrelated draft order on order-sign: nothing to check, no cards."""
    call = request(hook, (Service.DLI,))
    order = call["prefetch"]["serviceRequests"]["entry"][0]["resource"]
    order["code"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "36430"}]}
    response = client.post(PATHS[hook], json=call)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_an_appointment_not_based_on_an_order_gets_no_cards(client: TestClient) -> None:
    call = request("appointment-book")
    for entry in call["context"]["appointments"]["entry"]:
        entry["resource"].pop("basedOn")
    response = client.post(BOOK, json=call)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_an_appointment_for_another_patient_is_a_400(client: TestClient) -> None:
    call = request("appointment-book")
    appointment = call["context"]["appointments"]["entry"][0]["resource"]
    appointment["participant"][0]["actor"]["reference"] = "Patient/someone-else"
    assert_outcome(client.post(BOOK, json=call), 400, "is for Patient/someone-else")


APPOINTMENT_ERRORS = [
    ("no appointments", lambda c: c.pop("appointments"), "context.appointments"),
    ("not a Bundle", lambda c: c.update(appointments={"resourceType": "List"}), "must be a FHIR Bundle"),
    ("no entries", lambda c: c["appointments"].update(entry=[]), "must list the proposed appointments"),
    ("not an Appointment", lambda c: c["appointments"]["entry"][0]["resource"].update(resourceType="Encounter"), "must be an Appointment"),
    ("bad id", lambda c: c["appointments"]["entry"][0]["resource"].update(id="a b"), "needs a FHIR id"),
    ("bad userId", lambda c: c.update(userId="Device/1"), "context.userId"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "breaks", "fragment"), APPOINTMENT_ERRORS, ids=[e[0] for e in APPOINTMENT_ERRORS])
def test_bad_appointment_book_contexts_are_400s(
    client: TestClient, name: str, breaks: Any, fragment: str
) -> None:
    call = request("appointment-book")
    breaks(call["context"])
    assert_outcome(client.post(BOOK, json=call), 400, fragment)


def test_a_patient_may_book(client: TestClient) -> None:
    """appointment-book's userId may be the patient (CDS Hooks appointment-book 1.0)."""
    call = request("appointment-book")
    call["context"]["userId"] = f"Patient/{call['context']['patientId']}"
    assert client.post(BOOK, json=call).status_code == 200


DISPATCH_ERRORS = [
    ("no dispatchedOrders", lambda c: c.pop("dispatchedOrders"), "context.dispatchedOrders"),
    ("empty", lambda c: c.update(dispatchedOrders=[]), "context.dispatchedOrders"),
    ("not a request", lambda c: c.update(dispatchedOrders=["Patient/1"]), "request reference"),
    ("not a reference", lambda c: c.update(dispatchedOrders=["ram-dli"]), "request reference"),
    ("no performer", lambda c: c.pop("performer"), "context.performer"),
    ("bad performer", lambda c: c.update(performer="the centre"), "context.performer"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "breaks", "fragment"), DISPATCH_ERRORS, ids=[e[0] for e in DISPATCH_ERRORS])
def test_bad_order_dispatch_contexts_are_400s(
    client: TestClient, name: str, breaks: Any, fragment: str
) -> None:
    call = request("order-dispatch")
    breaks(call["context"])
    assert_outcome(client.post(DISPATCH, json=call), 400, fragment)


def test_the_ballot_order_dispatch_context_inferno_sends_is_read(client: TestClient) -> None:
    """Inferno's CRD 2.0.1 tester sends the hook's 2023 ballot form: `order` (one reference)
    and `task`. It is read as a one-order dispatchedOrders, and answered the same way."""
    call = request("order-dispatch", (Service.DLI,))
    standard = client.post(DISPATCH, json=call).json()
    task = call["context"].pop("fulfillmentTasks")[0]
    call["context"]["order"] = call["context"].pop("dispatchedOrders")[0]
    call["context"]["task"] = task
    ballot = client.post(DISPATCH, json=call)
    assert ballot.status_code == 200, ballot.text
    assert evaluated(ballot.json()) == evaluated(standard) != set()


@pytest.mark.parametrize("hook", HOOKS)
def test_the_coverage_info_option_turns_the_system_actions_off(
    client: TestClient, hook: str
) -> None:
    call = request(hook)
    call["extension"] = {"davinci-crd.configuration": {"coverage-info": False}}
    body = client.post(PATHS[hook], json=call).json()
    assert "systemActions" not in body and body["cards"]


@pytest.mark.parametrize("hook", HOOKS)
def test_order_sign_is_not_answered_by_the_primary_hook_services(
    client: TestClient, hook: str
) -> None:
    call = build_request(SCENARIO.bundle(), "order-sign")
    assert_outcome(client.post(PATHS[hook], json=call), 400, f"answers hook {hook!r}")


@pytest.mark.parametrize("hook", HOOKS)
def test_a_null_orders_prefetch_means_the_ehr_has_none(client: TestClient, hook: str) -> None:
    """`null` prefetch: the EHR has no such data (CDS Hooks 2.0), never re-queried."""
    call = request(hook)
    call["prefetch"]["serviceRequests"] = None
    body = client.post(PATHS[hook], json=call).json()
    assert [n["reason"] for n in not_evaluated(body)] == ["not-in-ehr", "not-in-ehr"]
    assert body["cards"][0]["summary"] == "Coverage not checked for 2 linked orders"
    assert body["cards"][0]["detail"].endswith("\n- 2 orders are not in the EHR")


@pytest.mark.parametrize(
    ("hook", "step"),
    [("appointment-book", "Book the appointment"), ("order-dispatch", "Send the order")],
)
def test_the_next_step_is_the_one_the_clinician_is_taking(
    client: TestClient, hook: str, step: str
) -> None:
    """The order is already signed: a met card says to go on with the booking or the sending."""
    body = client.post(PATHS[hook], json=request(hook, (Service.DLI,))).json()
    met = [c for c in body["cards"] if c["summary"].startswith("DLI meets")]
    assert met and met[0]["detail"].startswith(f"**Next step:** {step}: nothing more")
    assert all("Sign the order" not in c["detail"] for c in body["cards"])
