"""Logs carry ids, outcomes and timings, never tokens or patient data (PHI)."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.api.app import create_app
from cds_service.core.model import Service
from cds_service.logs import JsonFormatter
from cds_service.policy_store import Knowledge
from cds_service.scenarios import build_request, load_scenarios, resources
from cds_service.settings import Settings
from tests.clients import EC_KEY, RSA_KEY, JwksServer, auth_client, jwk_set, signed

SIGN = "/cds-services/dli-hpc-order-sign"
ACCESS_TOKEN = "ehr-access-token-7f3a9c1e5b"


def phi_strings(patient: dict[str, Any]) -> set[str]:
    """What identifies the patient: names, birth date, MRNs, phone numbers, address parts."""
    found = {patient["birthDate"]}
    for name in patient.get("name", []):
        found |= {name["family"], *name.get("given", [])}
    found |= {i["value"] for i in patient.get("identifier", [])}
    found |= {t["value"] for t in patient.get("telecom", [])}
    for address in patient.get("address", []):
        found |= {*address.get("line", []), address["city"], address["postalCode"]}
    return found


@pytest.fixture
def captured() -> Iterator[tuple[list[logging.LogRecord], io.StringIO]]:
    """Every record from every logger at DEBUG, raw and as the JSON the service writes."""
    records: list[logging.LogRecord] = []
    output = io.StringIO()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    json_handler = logging.StreamHandler(output)
    json_handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(keep := Keep())
    root.addHandler(json_handler)
    try:
        yield records, output
    finally:
        root.removeHandler(keep)
        root.removeHandler(json_handler)
        root.setLevel(old_level)


def test_full_scenarios_log_no_phi_and_no_tokens(
    knowledge: Knowledge, captured: tuple[list[logging.LogRecord], io.StringIO]
) -> None:
    records, output = captured
    client = auth_client(knowledge, JwksServer({"https://ehr.example.org/.well-known/jwks.json": jwk_set(("ec-1", EC_KEY), ("rsa-1", RSA_KEY))}))  # fmt: skip
    secrets: set[str] = {ACCESS_TOKEN}
    for scenario in load_scenarios():
        bundle = scenario.bundle()
        patient = next(r for r in resources(bundle) if r["resourceType"] == "Patient")
        secrets |= phi_strings(patient)
        body = build_request(bundle, "order-sign")
        body["fhirServer"] = "https://ehr.example.org/fhir"
        body["fhirAuthorization"] = {"access_token": ACCESS_TOKEN, "token_type": "Bearer",
                                     "expires_in": 300, "scope": "patient/*.read", "subject": "cds"}  # fmt: skip
        token = signed()
        secrets.add(token)
        response = client.post(SIGN, json=body, headers={"Authorization": f"Bearer {token}"})
        # a payer it does not handle: the 400 of CRD hook-13, logged as a rejection
        handled = scenario.payer in {p.id for p in knowledge.policies}
        assert response.status_code == (200 if handled else 400), scenario.id
        # The same PHI in requests that fail: a replayed token, then a request that is invalid.
        assert (
            client.post(SIGN, json=body, headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )
        body["context"]["userId"] = patient["name"][0]["family"]
        response = client.post(SIGN, json=body, headers={"Authorization": f"Bearer {signed()}"})
        assert response.status_code == 400
    assert len(secrets) > 7 * 30

    evaluated = [r for r in records if r.getMessage() == "hook evaluated"]
    answered = [s for s in load_scenarios() if s.payer in {p.id for p in knowledge.policies}]
    assert len(evaluated) == len(answered) > 20
    fields = evaluated[0].fields  # type: ignore[attr-defined]
    assert {"hookInstance", "service", "policies", "determinations", "ms"} <= set(fields)
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    assert {line["event"] for line in lines} >= {
        "hook evaluated",
        "client rejected",
        "hook rejected",
    }

    logged = output.getvalue() + "\n".join(
        f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in records
    )
    # Whole tokens only: a 5-digit postal code also turns up inside random hex ids (UUIDs, jti).
    leaked = sorted(
        s for s in secrets if re.search(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])", logged)
    )
    assert leaked == []


def test_other_loggers_and_exceptions_are_rendered_without_their_data() -> None:
    try:
        raise ValueError("Rosalind Hutchins 1957-11-05")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception: %s",
                               ("MRN-93104257",), exc_info)  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "Exception: %s"
    assert line["error"] == "ValueError" and line["at"].split(":")[0] == __file__
    text = json.dumps(line)
    assert all(s not in text for s in ("Rosalind", "Hutchins", "1957-11-05", "MRN-93104257"))


def test_a_failure_after_the_answer_is_logged_without_its_data(
    knowledge: Knowledge, captured: tuple[list[logging.LogRecord], io.StringIO]
) -> None:
    """The log line and audit record are written after the answer is sent; if that fails, the
    answer stands and the log names only the error's type."""
    records, output = captured
    app = create_app(Settings(), knowledge)

    def failing_submit(record: object, on_stored: object = None) -> None:
        raise RuntimeError("Rosalind Hutchins MRN-93104257")

    app.state.audit.submit = failing_submit
    scenario = load_scenarios()[0]
    response = TestClient(app).post(
        SIGN, json=build_request(scenario.bundle(), "order-sign", (Service.DLI,))
    )
    app.state.audit.close()
    assert response.status_code == 200 and response.json()["cards"]
    messages = [r.getMessage() for r in records]
    assert "audit step failed: RuntimeError" in messages
    assert "Rosalind" not in output.getvalue() + "\n".join(messages)


@pytest.mark.parametrize(
    ("logger", "template", "args", "event"),
    [
        ("uvicorn.error", "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
         ("http", "127.0.0.1", 8000), "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"),
        ("uvicorn.error", "Started server process [%d]", (4242,), "Started server process [4242]"),
        # any other template of another library keeps its arguments out
        ("uvicorn.error", "Invalid HTTP request received: %s", ("Bearer secret",),
         "Invalid HTTP request received: %s"),
        ("httpx", "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", ("a", "b", 1),
         "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)"),
    ],
)  # fmt: skip
def test_only_server_lifecycle_lines_of_other_libraries_are_rendered_whole(
    logger: str, template: str, args: tuple[Any, ...], event: str
) -> None:
    record = logging.LogRecord(logger, logging.INFO, __file__, 1, template, args, None)
    assert json.loads(JsonFormatter().format(record))["event"] == event
