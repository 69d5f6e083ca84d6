"""Values FHIR forbids are refused at the request boundary, before any answer, on both audit
backends: nothing is answered that the audit could not store, and nothing is stored half-way."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cds_service.api.errors import HookError
from cds_service.api.limits import check_fhir_text
from cds_service.audit.models import DecisionRow, FeedbackRow
from cds_service.audit.store import AuditStore
from tests import test_audit
from tests.test_audit import OVERRIDE, SELECT, all_payers_request, feedback

# The audit tests' fixtures: each test on SQLite and PostgreSQL, the store emptied after it.
database, store, app = test_audit.database, test_audit.store, test_audit.app


def draft_order(request: dict[str, Any]) -> dict[str, Any]:
    return request["context"]["draftOrders"]["entry"][0]["resource"]  # type: ignore[no-any-return]


def long_order_id(request: dict[str, Any]) -> None:
    order = draft_order(request)
    old = order["id"]
    order["id"] = "x" * 141
    if selections := request["context"].get("selections"):
        request["context"]["selections"] = [s.replace(old, order["id"]) for s in selections]


def nul_in_prefetch(request: dict[str, Any]) -> None:
    patient = request["prefetch"]["patient"]
    patient.setdefault("name", [{}])[0]["family"] = "Doe\u0000"


def nul_in_order_note(request: dict[str, Any]) -> None:
    draft_order(request)["note"] = [{"text": "urgent\u0000"}]


def control_in_extension_key(request: dict[str, Any]) -> None:
    request["extension"] = {"x\u001b": 1}


def bad_order_id_character(request: dict[str, Any]) -> None:
    draft_order(request)["id"] = "order/1"


def long_patient_id(request: dict[str, Any]) -> None:
    request["context"]["patientId"] = "p" * 65


BAD_HOOK_CALLS = [
    long_order_id,
    nul_in_prefetch,
    nul_in_order_note,
    control_in_extension_key,
    bad_order_id_character,
    long_patient_id,
]


def stored(store: AuditStore, row: type[DecisionRow] | type[FeedbackRow]) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(row)) or 0)


@pytest.mark.parametrize("spoil", BAD_HOOK_CALLS, ids=lambda f: f.__name__)
def test_a_forbidden_value_is_refused_before_any_answer(
    store: AuditStore, app: FastAPI, spoil: Any
) -> None:
    request = copy.deepcopy(all_payers_request(0))
    spoil(request)
    client = TestClient(app)
    response = client.post(SELECT, json=request)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.post(SELECT, json=all_payers_request(0)).status_code == 200
    assert app.state.audit.flush()
    assert stored(store, DecisionRow) == 1  # only the good call
    assert client.get("/healthz").json()["audit"]["status"] == "ok"


@pytest.mark.parametrize("comment", ["see note\u0000", "tab\u0007bell"], ids=["nul", "bell"])
def test_feedback_with_a_control_character_is_a_400_and_stores_nothing(
    store: AuditStore, app: FastAPI, comment: str
) -> None:
    client = TestClient(app)
    card = client.post(SELECT, json=all_payers_request(0)).json()["cards"][0]["uuid"]
    good = feedback(card, overrideReason=OVERRIDE)
    bad = feedback(card, overrideReason=OVERRIDE | {"userComment": comment})
    bad["feedback"].insert(0, good["feedback"][0])  # a good item first: none may be kept
    response = client.post(f"{SELECT}/feedback", json=bad)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert stored(store, FeedbackRow) == 0
    assert client.post(f"{SELECT}/feedback", json=good).status_code == 200
    assert stored(store, FeedbackRow) == 1


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("a\u0000b", True),
        ("\u001f", True),
        ("\b", True),
        ("\f", True),
        ("\u000b", True),
        ("\\\u0000", True),  # an escaped backslash, then a NUL
        ("tab\tline\ncarriage\r", False),
        ("a\\u0000", False),  # the six characters \u0000, not a NUL
        ("\\\\b", False),
        ("\u007f é 中", False),
    ],
)
def test_the_control_character_scan_reads_json_escapes_exactly(text: str, refused: bool) -> None:
    import orjson

    body = orjson.dumps({"value": text})
    if refused:
        with pytest.raises(HookError) as caught:
            check_fhir_text(body)
        assert caught.value.status == 400
    else:
        check_fhir_text(body)
