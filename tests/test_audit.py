"""Decision audit log and feedback, on SQLite and PostgreSQL (same tests on both).

Everything goes through the real app (TestClient), the real CLI (CliRunner) and a real
database; the only stand-in is a TCP listener that never answers, to play a hung database.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from cds_service.api.app import create_app
from cds_service.audit import writer as writer_module
from cds_service.audit.feedback import FeedbackRequest
from cds_service.audit.models import Base, FeedbackRow
from cds_service.audit.record import CardRecord, CriterionRecord, DecisionRecord, EvaluationRecord
from cds_service.audit.store import AuditFilter, AuditStore
from cds_service.audit.writer import AuditWriter
from cds_service.cli import app as cli
from cds_service.core.model import Service
from cds_service.policy_store import Knowledge, load
from cds_service.scenarios import build_request, load_scenarios, resources, service_id
from cds_service.settings import Settings
from tests.audit_db import postgres_database

SCENARIOS = load_scenarios()
SIGN = f"/cds-services/{service_id('order-sign')}"
SELECT = "/cds-services/dli-hpc-order-select"
EVALUATIONS = "dli-hpc-cds.evaluations"
runner = CliRunner()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[URL]:
    if request.param == "sqlite":
        yield URL.create("sqlite", database=str(tmp_path_factory.mktemp("audit") / "audit.sqlite3"))
    else:
        yield from postgres_database()


@pytest.fixture
def store(database: URL) -> Iterator[AuditStore]:
    """The migrated store, emptied after each test."""
    store = AuditStore(database)
    store.migrate()
    yield store
    with store.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    store.close()


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def make_app(url: URL | str, knowledge: Knowledge) -> FastAPI:
    settings = Settings(DATABASE_URL=url if isinstance(url, str) else url_text(url))
    return create_app(settings, knowledge)


@pytest.fixture
def app(store: AuditStore, knowledge: Knowledge) -> Iterator[FastAPI]:
    app = make_app(store.url, knowledge)
    yield app
    app.state.audit.close()


def all_payers_request(scenario_index: int) -> dict[str, Any]:
    request = build_request(SCENARIOS[scenario_index].bundle(), "order-select", tuple(Service))
    request["prefetch"]["coverage"] = None  # no Coverage: all five policies
    return request


def fire_all(client: TestClient) -> list[dict[str, Any]]:
    """Every scenario, both orders, all five policies: the responses, in order."""
    bodies = []
    for i in range(len(SCENARIOS)):
        response = client.post(SELECT, json=all_payers_request(i))
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    return bodies


def expected(scenario_index: int) -> dict[tuple[str, str], str]:
    """(service, policy id) -> determination declared in the scenario files."""
    return {
        (svc, policy): determination
        for svc, by_policy in SCENARIOS[scenario_index].expected.items()
        for policy, determination in by_policy.items()
    }


def audit_cli(store: AuditStore, *args: str) -> Any:
    result = runner.invoke(cli, ["audit", *args], env={"DATABASE_URL": url_text(store.url)})
    assert result.exit_code == 0, result.output
    return result


# --- schema ---------------------------------------------------------------------------------
def test_migrations_run_from_empty_concurrently_and_match_the_models(store: AuditStore) -> None:
    with store.engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE audit_alembic_version"))
    assert inspect(store.engine).get_table_names() == []
    replicas = [AuditStore(store.url) for _ in range(3)]
    threads = [threading.Thread(target=r.migrate) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for replica in replicas:
        replica.close()
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": "audit_alembic_version"}
        )
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == "0004"


def test_the_default_database_is_a_sqlite_file_created_on_first_start(
    tmp_path: Any, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    app = create_app(Settings(), knowledge)
    assert app.state.audit.flush()
    health = TestClient(app).get("/healthz").json()["audit"]
    app.state.audit.close()
    assert health["status"] == "ok" and health["backend"] == "sqlite"
    assert (tmp_path / "data" / "audit.sqlite3").is_file()


# --- one record per call ----------------------------------------------------------------------
def test_fired_fixtures_give_one_record_per_call_with_the_right_determinations(
    store: AuditStore, app: FastAPI
) -> None:
    bodies = fire_all(TestClient(app))
    assert app.state.audit.flush()

    listed = audit_cli(store, "list", "--limit", "1000").stdout.splitlines()
    assert len(listed) == len(SCENARIOS)
    exported = [json.loads(line) for line in audit_cli(store, "export").stdout.splitlines()]
    assert len(exported) == len(SCENARIOS)
    for i, (record, body) in enumerate(zip(exported, bodies, strict=True)):
        got = {(e["service"], e["policyId"]): e["determination"] for e in record["evaluations"]}
        assert got == expected(i), SCENARIOS[i].id
        patient = next(
            r["id"] for r in resources(SCENARIOS[i].bundle()) if r["resourceType"] == "Patient"
        )
        assert record["patient"] == f"Patient/{patient}"
        assert {c["uuid"] for c in record["cards"]} == {c["uuid"] for c in body["cards"]}
        shown = {
            (e["order"], e["policyId"]): e
            for c in body["cards"]
            for e in c["extension"][EVALUATIONS]
        }
        for evaluation in record["evaluations"]:
            card = next(c for c in body["cards"] if c["uuid"] == evaluation["card"])
            assert any(
                e["policyId"] == evaluation["policyId"] for e in card["extension"][EVALUATIONS]
            )
            statuses = {
                c["id"]: c["status"]
                for c in shown[evaluation["order"], evaluation["policyId"]].get("criteria", [])
            }
            assert {c["id"]: c["status"] for c in evaluation["criteria"]} == statuses
            assert evaluation["policyVersion"]
        assert record["dataSource"] == "prefetch" and record["clientIss"] is None


def knowledge_version(policy_id: str) -> str:
    return next(p.policy.version for p in load().policies if p.id == policy_id)


def test_record_holds_versions_assertions_and_evidence(store: AuditStore, app: FastAPI) -> None:
    scenario = next(s for s in SCENARIOS if s.id == "relapsed-aml-allo-mac")
    request = build_request(scenario.bundle(), "order-sign", (Service.DLI,))
    body = TestClient(app).post(SIGN, json=request).json()
    assert app.state.audit.flush()
    record = json.loads(audit_cli(store, "show", request["hookInstance"]).stdout)
    assertion = next(
        x["valueString"]
        for x in body["systemActions"][0]["resource"]["extension"][-1]["extension"]
        if x["url"] == "coverage-assertion-id"
    )
    (evaluation,) = record["evaluations"]
    assert evaluation["policyId"] == "molina-mcp-210"
    assert evaluation["policyVersion"] == knowledge_version("molina-mcp-210")
    assert evaluation["coverageAssertionId"] == assertion
    assert evaluation["card"] == body["cards"][0]["uuid"]
    assert any(c["evidence"] for c in evaluation["criteria"])
    assert all(ref.count("/") == 1 for c in evaluation["criteria"] for ref in c["evidence"])
    assert record["hook"] == "order-sign" and record["serviceId"] == service_id("order-sign")
    assert record["orders"] == ["ServiceRequest/ram-dli"]
    # the same record by its row id
    assert json.loads(audit_cli(store, "show", str(record["id"])).stdout) == record


def test_a_call_with_no_dli_or_hpc_order_is_recorded_too(store: AuditStore, app: FastAPI) -> None:
    request = all_payers_request(0)
    for entry in request["context"]["draftOrders"]["entry"]:
        entry["resource"]["code"] = {
            "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "85025"}]
        }
    assert TestClient(app).post(SELECT, json=request).json() == {"cards": []}
    assert app.state.audit.flush()
    record = json.loads(audit_cli(store, "show", request["hookInstance"]).stdout)
    assert record["evaluations"] == [] and record["cards"] == []


@pytest.mark.parametrize(
    ("options", "count"),
    [
        (["--policy", "anthem-cg-trans-03", "--determination", "does-not-meet-criteria"], None),
        (["--determination", "meets-criteria"], None),
        (["--patient", "relapsed-aml-allo-mac"], 1),
        (["--since", "2999-01-01"], 0),
        (["--until", "2000-01-01"], 0),
    ],
)
def test_list_filters(
    store: AuditStore, app: FastAPI, options: list[str], count: int | None
) -> None:
    fire_all(TestClient(app))
    assert app.state.audit.flush()
    lines = audit_cli(store, "list", "--limit", "1000", *options).stdout.splitlines()
    if count is None:  # policy / determination: exactly the scenarios declaring it
        wanted = dict(zip(options[::2], options[1::2], strict=True))
        count = sum(
            any(
                (wanted.get("--policy") in (None, p)) and d == wanted["--determination"]
                for (_, p), d in expected(i).items()
            )
            for i in range(len(SCENARIOS))
        )
        assert count > 0
    assert len(lines) == count


def test_export_to_a_file_and_the_cli_rejects_bad_input(
    store: AuditStore, app: FastAPI, tmp_path: Any
) -> None:
    TestClient(app).post(SELECT, json=all_payers_request(0))
    assert app.state.audit.flush()
    out = tmp_path / "audit.jsonl"
    audit_cli(store, "export", "--out", str(out))
    assert len(out.read_text().splitlines()) == 1
    env = {"DATABASE_URL": url_text(store.url)}
    assert runner.invoke(cli, ["audit", "show", "no-such-call"], env=env).exit_code == 2
    assert runner.invoke(cli, ["audit", "list", "--since", "yesterday"], env=env).exit_code == 2


def test_the_fire_command_is_audited(store: AuditStore) -> None:
    env = {"DATABASE_URL": url_text(store.url)}
    for scenario in ("relapsed-aml-allo-mac", "mds-relapse"):
        result = runner.invoke(cli, ["fire", scenario], env=env)
        assert result.exit_code == 0, result.output
    lines = audit_cli(store, "list").stdout.splitlines()
    assert len(lines) == 2
    assert "Patient/" in lines[0] and "molina-mcp-210=meets-criteria" in lines[0]


# --- feedback ----------------------------------------------------------------------------------
def feedback(card: str, outcome: str = "overridden", **extra: Any) -> dict[str, Any]:
    item = {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-11-21T10:00:00Z", **extra}
    return {"feedback": [item]}


OVERRIDE = {"reason": {"system": "http://example.org/override", "code": "patient-specific", "display": "Patient-specific"}, "userComment": "Discussed with the payer"}  # fmt: skip


def test_feedback_is_linked_to_its_decision(store: AuditStore, app: FastAPI) -> None:
    client = TestClient(app)
    request = all_payers_request(0)
    card = client.post(SELECT, json=request).json()["cards"][0]["uuid"]
    assert app.state.audit.flush()
    url = f"{SELECT}/feedback"
    response = client.post(url, json=feedback(card, overrideReason=OVERRIDE))
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1, "unknownCards": []}
    record = json.loads(audit_cli(store, "show", request["hookInstance"]).stdout)
    (item,) = record["feedback"]
    assert item["card"] == card and item["outcome"] == "overridden"
    assert item["overrideReason"]["code"] == "patient-specific"
    assert item["overrideReason"]["userComment"] == "Discussed with the payer"
    assert item["outcomeTimestamp"].startswith("2026-11-21T10:00:00")


def test_feedback_for_an_unknown_card_is_stored_and_flagged(
    store: AuditStore, app: FastAPI
) -> None:
    card = str(uuid.uuid4())
    response = TestClient(app).post(
        f"{SIGN}/feedback", json=feedback(card, "accepted", acceptedSuggestions=[{"id": "s1"}])
    )
    assert response.status_code == 200
    assert response.json() == {"stored": 1, "unknownCards": [card]}
    with store.session() as session:
        (row,) = session.scalars(select(FeedbackRow))
    assert row.card_uuid == card and not row.card_known and row.accepted_suggestions == ["s1"]


def test_feedback_arriving_before_its_decision_is_linked_when_the_decision_lands(
    store: AuditStore,
) -> None:
    """Another replica may store the decision after this one stored the feedback."""
    items = FeedbackRequest.model_validate(feedback("card-1")).feedback
    (early,) = store.add_feedback(items, "svc", datetime.now(UTC))
    assert not early.card_known
    decision_id = store.add_decision(
        decision_record([("p", "card-1", "does-not-meet-criteria", [])])
    )
    assert store.feedback([decision_id])[decision_id][0].card_uuid == "card-1"


def test_the_writer_stores_what_arrives_together_in_one_transaction(store: AuditStore) -> None:
    batches: list[int] = []
    add_decisions = store.add_decisions

    def spy(records: list[DecisionRecord], skip_stored: bool = False) -> list[int]:
        batches.append(len(records))
        return add_decisions(records, skip_stored)

    store.add_decisions = spy  # type: ignore[method-assign]
    writer = AuditWriter(store, batch_window=5.0)  # flush ends the batch, not the window
    records = [
        decision_record([("A", f"card-{i}", "meets-criteria", [("x", "met")])]) for i in range(5)
    ]
    for record in records:
        writer.submit(record)
    assert writer.flush()
    writer.close()
    assert batches == [5] and writer.health()["written"] == 5
    stored = [d.hook_instance for d in store.decisions(AuditFilter())]
    assert stored == [r.hook_instance for r in records]
    assert [c.uuid for d in store.decisions(AuditFilter()) for c in d.cards] == [
        f"card-{i}" for i in range(5)
    ]


def test_a_record_the_database_refuses_does_not_take_its_batch_with_it(
    store: AuditStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = [decision_record([("A", f"ok-{i}", "meets-criteria", [])]) for i in range(2)]
    # NOT NULL: refused by the database itself, on every backend
    refused = replace(decision_record([("A", "bad", "meets-criteria", [])]), patient_id=None)  # type: ignore[arg-type]
    writer = AuditWriter(store, batch_window=5.0)
    for record in (good[0], refused, good[1]):
        writer.submit(record)
    assert writer.flush()
    writer.close()
    health = writer.health()
    assert (health["written"], health["refused"], health["spooled"]) == (2, 1, 0)
    assert health["status"] == "ok"  # one bad record does not make the storage unhealthy
    stored = {d.hook_instance for d in store.decisions(AuditFilter())}
    assert stored == {r.hook_instance for r in good}
    assert any(refused.hook_instance in r.getMessage() for r in caplog.records)


BAD_FEEDBACK = [
    ("not JSON", b"{", "not valid JSON"),
    ("no feedback key", {"items": []}, "feedback"),
    ("empty list", {"feedback": []}, "feedback"),
    ("missing card", {"feedback": [{"outcome": "overridden", "outcomeTimestamp": "2026-11-21T10:00:00Z"}]}, "card"),
    ("bad outcome", feedback("c", "ignored"), "outcome"),
    ("accepted without suggestions", feedback("c", "accepted"), "acceptedSuggestions is required"),
    ("empty override reason", feedback("c", overrideReason={}), "reason or a userComment"),
    ("reason without code", feedback("c", overrideReason={"reason": {"system": "x"}}), "code"),
    ("timestamp without zone", {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-21T10:00:00"}]}, "outcomeTimestamp"),
    ("timestamp as a number", {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": 1700000000}]}, "RFC 3339"),
    ("timestamp past 9999 in UTC", {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "9999-12-31T23:00:00-05:00"}]}, "out of range"),
    ("timestamp before year 1 in UTC", {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "0001-01-01T00:30:00+01:00"}]}, "out of range"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "body", "message"), BAD_FEEDBACK, ids=[b[0] for b in BAD_FEEDBACK])
def test_bad_feedback_gets_400_with_an_operation_outcome(
    store: AuditStore, app: FastAPI, why: str, body: Any, message: str
) -> None:
    client = TestClient(app)
    if isinstance(body, bytes):
        response = client.post(
            f"{SIGN}/feedback", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = client.post(f"{SIGN}/feedback", json=body)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert message in outcome["issue"][0]["diagnostics"]
    with store.session() as session:
        assert session.scalars(select(FeedbackRow)).first() is None


def test_feedback_for_an_unknown_service_is_404(store: AuditStore, app: FastAPI) -> None:
    response = TestClient(app).post("/cds-services/nope/feedback", json=feedback("c"))
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


# --- statistics on a constructed example ------------------------------------------------------
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def decision_record(
    evaluations: list[tuple[str, str, str, list[tuple[str, str]]]],
) -> DecisionRecord:
    """(policy, card uuid, determination, [(criterion, status)]) per evaluation."""
    return DecisionRecord(
        recorded_at=T0,
        hook_instance=str(uuid.uuid4()),
        service_id="svc",
        hook="order-sign",
        patient_id="p1",
        orders=("ServiceRequest/o1",),
        evaluations=tuple(
            EvaluationRecord(
                "ServiceRequest/o1",
                "dli",
                policy,
                "v1",
                determination,
                card,
                None,
                tuple(CriterionRecord(c, s, ()) for c, s in criteria),
            )
            for policy, card, determination, criteria in evaluations
        ),
        cards=tuple(CardRecord(card, ()) for _, card, _, _ in evaluations),
        latency_ms=1.0,
    )


def test_override_rates_on_a_constructed_example(store: AuditStore) -> None:
    no, unknown, met = "does-not-meet-criteria", "needs-information", "meets-criteria"
    store.add_decision(decision_record([
        ("A", "c1", no, [("x", "not-met"), ("y", "met")]),
        ("A", "c2", no, [("x", "not-met"), ("y", "met")]),
        ("A", "c3", unknown, [("x", "unknown"), ("y", "met")]),
        ("A", "c4", no, [("x", "not-met"), ("y", "met")]),  # no feedback: not counted
        ("B", "c5", met, [("z", "met")]),
    ]))  # fmt: skip

    def give(card: str, outcome: str, at: datetime) -> None:
        item: dict[str, Any] = {
            "card": card,
            "outcome": outcome,
            "outcomeTimestamp": at.isoformat(),
        }
        if outcome == "accepted":
            item["acceptedSuggestions"] = [{"id": "s"}]
        store.add_feedback(FeedbackRequest.model_validate({"feedback": [item]}).feedback, "svc", at)

    give("c1", "overridden", T0)
    give("c2", "accepted", T0)
    give("c3", "accepted", T0 + timedelta(hours=2))  # stored first, but the latest: accepted
    give("c3", "overridden", T0 + timedelta(hours=1))
    give("c5", "overridden", T0)
    give("unknown-card", "overridden", T0)  # flagged, never counted

    numbers = json.loads(audit_cli(store, "stats", "--json").stdout)
    assert numbers["determinations"] == {"A": {no: 3, unknown: 1}, "B": {met: 1}}
    assert numbers["overridesByPolicy"] == [
        {"policy": "A", "withFeedback": 3, "overridden": 1, "overrideRate": 0.3333},
        {"policy": "B", "withFeedback": 1, "overridden": 1, "overrideRate": 1.0},
    ]
    assert numbers["overridesByCriterion"] == [
        {"policy": "A", "criterion": "x", "status": "not-met", "withFeedback": 2, "overridden": 1, "overrideRate": 0.5},
        {"policy": "A", "criterion": "x", "status": "unknown", "withFeedback": 1, "overridden": 0, "overrideRate": 0.0},
    ]  # fmt: skip
    text_output = audit_cli(store, "stats").stdout
    assert "1/3 overridden (33%)" in text_output and "1/2 overridden (50%)" in text_output
    assert (
        json.loads(audit_cli(store, "stats", "--json", "--since", "2026-11-02").stdout)[
            "determinations"
        ]
        == {}
    )


def test_purge_deletes_what_is_older_than_the_retention(store: AuditStore) -> None:
    def stored(age: timedelta, card: str) -> int:
        record = decision_record([("A", card, "meets-criteria", [("x", "met")])])
        return store.add_decision(replace(record, recorded_at=datetime.now(UTC) - age))

    old_id, new_id = stored(timedelta(days=40), "old-card"), stored(timedelta(days=1), "new-card")
    result = audit_cli(store, "purge", "--days", "30")
    assert "purged 1 decision(s)" in result.stdout
    assert store.find(str(old_id)) is None and store.find(str(new_id)) is not None


# --- the clinical answer never depends on storage -----------------------------------------------
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_database_every_call_still_answers_correctly(
    knowledge: Knowledge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "cds_service.audit")
    app = make_app(f"postgresql://postgres@127.0.0.1:{closed_port()}/test", knowledge)
    client = TestClient(app)
    bodies = fire_all(client)
    for i, body in enumerate(bodies):
        got = {
            (e["service"], e["policyId"]): e["determination"]
            for c in body["cards"]
            for e in c["extension"][EVALUATIONS]
        }
        assert got == expected(i), SCENARIOS[i].id
    assert app.state.audit.flush()
    health = client.get("/healthz")
    app.state.audit.close()
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    audit = health.json()["audit"]
    assert audit["status"] == "spooling" and audit["spooled"] == len(SCENARIOS)
    assert "refused" in audit["lastError"].lower() or "connect" in audit["lastError"].lower()
    # feedback cannot be kept: the client is told so, with an OperationOutcome
    response = TestClient(
        make_app(f"postgresql://postgres@127.0.0.1:{closed_port()}/test", knowledge)
    ).post(f"{SIGN}/feedback", json=feedback("c"))
    assert response.status_code == 503 and response.json()["resourceType"] == "OperationOutcome"


def test_a_hanging_database_does_not_hold_up_the_answers(
    knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A database that accepts the connection and never answers: the writer is stuck in its
    connect for the whole run, and every answer still comes back, its record already on disk in
    the spool file (issue 24: before, the records waited in memory and a kill -9 lost them);
    past the write timeout /healthz says degraded (before: ok, "starting", for 15 s and more)."""
    monkeypatch.setattr(writer_module, "WRITE_TIMEOUT_S", 0.3)
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)  # the kernel completes connects; nobody ever speaks
        app = make_app(f"postgresql://postgres@127.0.0.1:{hung.getsockname()[1]}/test", knowledge)
        client = TestClient(app)
        for i in range(3):
            body = client.post(SELECT, json=all_payers_request(i)).json()
            got = {
                (e["service"], e["policyId"]): e["determination"]
                for c in body["cards"]
                for e in c["extension"][EVALUATIONS]
            }
            assert got == expected(i)
        health = client.get("/healthz").json()["audit"]
        assert health["written"] == 0 and health["queued"] == 0  # still connecting
        assert health["spooled"] == 3 and health["heldInMemory"] == 0  # each answer's, on disk
        assert spooled_on_disk(app.state.audit.spool.path, tmp_path) == 3
        time.sleep(0.4)
        assert client.get("/healthz").json()["status"] == "degraded"
        assert "has not answered" in client.get("/healthz").json()["audit"]["lastError"]
    app.state.audit.close()  # the listener is gone: the remaining attempts fail fast


def spooled_on_disk(spool_file: Path, scratch: Path) -> int:
    """The records a kill -9 now would leave: the spool's files as they are on disk, copied (the
    live process holds the file in exclusive mode), opened as a restarted service opens them."""
    for suffix in ("", "-wal"):
        source = Path(f"{spool_file}{suffix}")
        if source.exists():
            shutil.copyfile(source, scratch / f"copy.db{suffix}")
    with sqlite3.connect(scratch / "copy.db") as reading:
        return int(reading.execute("SELECT count(*) FROM spooled").fetchone()[0])


# --- no PHI in the database ----------------------------------------------------------------------
def phi_values(bundle: dict[str, Any]) -> set[str]:
    """Names, birth date, identifiers (MRN), address and telecom of the bundle's Patient."""
    found: set[str] = set()
    for patient in (r for r in resources(bundle) if r["resourceType"] == "Patient"):
        for name in patient.get("name", []):
            found.update([name.get("family", ""), *name.get("given", [])])
        found.add(patient.get("birthDate", ""))
        found.update(i["value"] for i in patient.get("identifier", []))
        for address in patient.get("address", []):
            found.update(
                [*address.get("line", []), address.get("city", ""), address.get("postalCode", "")]
            )
        found.update(t["value"] for t in patient.get("telecom", []))
    return {v for v in found if len(v) >= 4}


def test_no_phi_reaches_the_database(store: AuditStore, app: FastAPI) -> None:
    client = TestClient(app)
    bodies = fire_all(client)
    cards = [card for body in bodies for card in body["cards"]]
    client.post(f"{SELECT}/feedback", json=feedback(cards[0]["uuid"], overrideReason=OVERRIDE))
    assert app.state.audit.flush()
    # every text and JSON cell of every table (numbers and timestamps cannot hold PHI, and
    # their digits would match postal codes by chance)
    dump = []
    with store.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                dump += [
                    c if isinstance(c, str) else json.dumps(c)
                    for c in row
                    if isinstance(c, str | list | dict)
                ]
    database = "\n".join(dump)
    phi = set().union(*(phi_values(s.bundle()) for s in SCENARIOS))
    assert len(phi) > 5 * len(SCENARIOS)  # the fixtures are PHI-laden: names, MRNs, addresses…
    leaked = sorted(
        v for v in phi if re.search(rf"(?<![0-9A-Za-z]){re.escape(v)}(?![0-9A-Za-z])", database)
    )
    assert leaked == []
    # no card text either (its detail quotes clinical values)
    assert not any(card["summary"] in database for card in cards)


def test_migrations_of_different_databases_in_one_process_do_not_interfere(
    tmp_path: Path,
) -> None:
    """Alembic's migration context is process-global: writers starting together (several apps,
    a store and its spool's neighbours) must each migrate their own database."""
    urls = [URL.create("sqlite", database=str(tmp_path / f"audit-{i}.sqlite3")) for i in range(8)]
    stores = [AuditStore(url) for url in urls]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda store: store.migrate(), stores))
    for store in stores:
        with store.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        store.close()


def test_a_process_forked_during_a_migration_does_not_keep_the_migration_lock(
    tmp_path: Path,
) -> None:
    """The large-call worker is forked from a process whose audit writer may be migrating: the
    SQLite migration lock must stay this process's (a flock() was shared with the child, which
    never released it, and the next writer of the file hung)."""
    url = URL.create("sqlite", database=str(tmp_path / "audit.sqlite3"))
    first, second = AuditStore(url), AuditStore(url)
    with first._file_lock():
        child = os.fork()
        if child == 0:  # the forked worker: holds its copy of the fd, never touches it
            time.sleep(30)
            os._exit(0)
    try:
        migrating = threading.Thread(target=second.migrate, daemon=True)
        migrating.start()
        migrating.join(timeout=15)
        assert not migrating.is_alive(), "the second writer waits for a lock no one holds"
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        first.close()
        second.close()


def test_the_record_says_which_criteria_rested_on_a_worksheet(
    store: AuditStore, app: FastAPI
) -> None:
    """Issue 13: criterion ids and the QuestionnaireResponse reference, never the answers."""
    from tests.test_attestation import SHEETS, worksheet_answers

    scenario = next(s for s in SCENARIOS if s.id == "prophylactic-dli-ric")
    sheet = SHEETS["molina-mcp-210", Service.DLI]
    answers = worksheet_answers(sheet, scenario.id, {"molina-dli-planned-prevention": True})
    request = build_request(scenario.bundle(), "order-select", (Service.DLI,))
    request["prefetch"]["coverage"] = None
    request["prefetch"]["questionnaireResponses"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": answers}],
    }
    assert TestClient(app).post(SELECT, json=request).status_code == 200
    assert app.state.audit.flush()
    shown = audit_cli(store, "show", request["hookInstance"]).stdout
    record = json.loads(shown)
    molina = next(e for e in record["evaluations"] if e["policyId"] == "molina-mcp-210")
    assert molina["determination"] == "meets-criteria"
    attested = [
        c["id"]
        for c in molina["criteria"]
        if "QuestionnaireResponse/molina-dli-ws" in c["evidence"]
    ]
    assert attested == ["molina-dli-planned-prevention"]
    assert "Attester" not in shown  # who answered is on the card, not in the audit log
