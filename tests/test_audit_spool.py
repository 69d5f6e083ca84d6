"""No audit record lost: while the database is unreachable (or the SQLite file is full) the
records wait in the local spool and are replayed in order when it is back, each exactly once."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from cds_service.api.app import create_app
from cds_service.audit import spool as spool_module
from cds_service.audit.models import DecisionRow
from cds_service.audit.record import DecisionRecord
from cds_service.audit.spool import AuditSpool, dump, load
from cds_service.audit.store import AuditStore, database_url
from cds_service.audit.writer import AuditWriter
from cds_service.policy_store import Knowledge
from cds_service.settings import Settings
from tests import test_audit
from tests.audit_db import postgres_database
from tests.outage import switchable
from tests.test_audit import SELECT, all_payers_request, decision_record, url_text

database, store = test_audit.database, test_audit.store


def wait_until_replayed(app: FastAPI, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        assert app.state.audit.flush()
        health: dict[str, Any] = app.state.audit.health()
        if health["spooled"] == 0 or time.monotonic() > deadline:
            return health
        time.sleep(0.2)


def stored_ids(store: AuditStore) -> list[str | None]:
    with store.session() as session:
        return list(session.scalars(select(DecisionRow.record_id).order_by(DecisionRow.id)))


def test_a_spooled_record_reads_back_equal() -> None:
    record = decision_record([("A", "card-1", "meets-criteria", [("x", "met"), ("y", "unknown")])])
    assert load(dump(record)) == record
    # orjson's own dataclass serialisation: the bytes of the plain dict form, nested included
    assert dump(record) == orjson.dumps(dataclasses.asdict(record))


def fire(client: TestClient, count: int) -> None:
    for i in range(count):
        response = client.post(SELECT, json=all_payers_request(i % 3))
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def postgres() -> Iterator[URL]:
    yield from postgres_database()


def test_postgres_unreachable_mid_run_loses_nothing_and_doubles_nothing(
    postgres: URL, knowledge: Knowledge, tmp_path: Path
) -> None:
    target = (postgres.host or "127.0.0.1", postgres.port or 5432)
    with switchable(*target) as proxy:
        url = postgres.set(host="127.0.0.1", port=proxy.port)
        app = create_app(
            Settings(DATABASE_URL=url_text(url), CDS_DATA_DIR=str(tmp_path)), knowledge
        )
        client = TestClient(app)
        fire(client, 10)
        assert app.state.audit.flush()
        proxy.down()
        fire(client, 15)
        assert app.state.audit.flush()
        during = app.state.audit.health()
        assert during["status"] == "spooling" and during["spooled"] > 0
        assert client.get("/healthz").json()["status"] == "degraded"
        proxy.restore()
        fire(client, 10)
        health = wait_until_replayed(app)
        app.state.audit.close()
    assert health["spooled"] == 0 and health["status"] == "ok", health
    reader = AuditStore(postgres)
    ids = stored_ids(reader)
    reader.close()
    assert len(ids) == 35 and len(set(ids)) == 35  # every answer, none twice


def test_sqlite_full_loses_nothing(store: AuditStore, knowledge: Knowledge, tmp_path: Path) -> None:
    if store.backend != "sqlite":
        pytest.skip("a full disk is a SQLite condition: not applicable to PostgreSQL")
    app = create_app(
        Settings(DATABASE_URL=url_text(store.url), CDS_DATA_DIR=str(tmp_path)), knowledge
    )
    client = TestClient(app)
    fire(client, 5)
    assert app.state.audit.flush()
    writer_store: AuditStore = app.state.audit.store

    def full(dbapi_connection: Any, _: Any) -> None:  # no page beyond those in use: SQLITE_FULL
        used = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={used}")

    event.listen(writer_store.engine, "connect", full)
    writer_store.engine.dispose()
    fire(client, 20)
    assert app.state.audit.flush()
    assert app.state.audit.health()["spooled"] > 0
    assert "full" in (app.state.audit.health()["lastError"] or "").lower()
    event.remove(writer_store.engine, "connect", full)
    writer_store.engine.dispose()
    health = wait_until_replayed(app)
    app.state.audit.close()
    assert health["spooled"] == 0 and health["status"] == "ok", health
    ids = stored_ids(store)
    assert len(ids) == 25 and len(set(ids)) == 25


def test_a_commit_whose_acknowledgement_was_lost_is_stored_once(store: AuditStore) -> None:
    """The database commits and the connection drops before saying so: the writer spools the
    batch; its replay finds the record ids already stored and adds nothing."""
    add_decisions = store.add_decisions
    calls: list[bool] = []

    def commit_then_drop(records: list[DecisionRecord], skip_stored: bool = False) -> list[int]:
        calls.append(skip_stored)
        ids = add_decisions(records, skip_stored)
        if len(calls) == 1:
            raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))
        return ids

    store.add_decisions = commit_then_drop  # type: ignore[method-assign]
    writer = AuditWriter(store, batch_window=0.0)
    records = [decision_record([("A", f"c{i}", "meets-criteria", [])]) for i in range(3)]
    for record in records:
        writer.submit(record)
    assert writer.flush()
    deadline = time.monotonic() + 10
    while writer.health()["spooled"] and time.monotonic() < deadline:
        time.sleep(0.1)
    writer.close()
    assert calls[0] is False and True in calls[1:]
    assert stored_ids(store) == [r.record_id for r in records]


def test_records_spooled_by_a_stopped_process_are_replayed_by_the_next(
    store: AuditStore, tmp_path: Path
) -> None:
    spool_file = tmp_path / "spool.sqlite3"
    unreachable = AuditStore(URL.create("sqlite", database=str(tmp_path / "nodir" / "x" / "a.db")))
    unreachable.migrate = lambda: (_ for _ in ()).throw(OperationalError("connect", {}, OSError()))  # type: ignore[method-assign]
    first = AuditWriter(unreachable, batch_window=0.0, spool=AuditSpool(spool_file))
    records = [decision_record([("A", f"c{i}", "meets-criteria", [])]) for i in range(4)]
    for record in records:
        first.submit(record)
    assert first.flush()
    first.close()
    assert first.health()["spooled"] == 4
    second = AuditWriter(store, batch_window=0.0, spool=AuditSpool(spool_file))
    assert second.flush()
    second.close()
    assert second.health()["spooled"] == 0
    assert stored_ids(store) == [r.record_id for r in records]


def chattr(flag: str, folder: Path) -> bool:
    files = [str(p) for p in folder.iterdir()]
    try:
        return subprocess.run(["chattr", flag, *files], capture_output=True).returncode == 0
    except OSError:
        return False


def test_immutable_sqlite_files_keep_the_process_answering_and_lose_nothing(
    knowledge: Knowledge, tmp_path: Path
) -> None:
    """`chattr +i` under a running service (an operator, a backup tool): with WAL the next
    write to its memory-mapped index killed the process (SIGBUS). Now the writes fail with an
    error, the records wait (spool file immutable too: in memory, counted), and are stored
    once the files can be written again."""
    app = create_app(Settings(CDS_DATA_DIR=str(tmp_path)), knowledge)
    client = TestClient(app)
    fire(client, 5)
    assert app.state.audit.flush()
    if os.geteuid() != 0 or not chattr("+i", tmp_path):
        app.state.audit.close()
        pytest.skip("needs root and chattr +i on this filesystem: run as root on ext4 / xfs, as CI does")
    try:
        fire(client, 10)  # the process survives: every call still answered 200
        assert app.state.audit.flush()
        health = app.state.audit.health()
        assert client.get("/healthz").json()["status"] == "degraded"
    finally:
        assert chattr("-i", tmp_path)
    assert health["status"] == "spooling" and health["spooled"] == 10, health
    assert health["heldInMemory"] == 10 and health["dropped"] == 0
    health = wait_until_replayed(app)
    app.state.audit.close()
    assert health["spooled"] == 0 and health["status"] == "ok", health
    store = AuditStore(database_url(tmp_path, None))
    ids = stored_ids(store)
    store.close()
    assert len(ids) == 15 and len(set(ids)) == 15


def test_records_held_in_memory_are_bounded_and_the_overflow_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spool_module, "HELD_MAX", 3)
    spool = AuditSpool(None)  # no file: everything waits in memory
    records = [decision_record([("A", f"c{i}", "meets-criteria", [])]) for i in range(5)]
    spool.add(records[:2])
    spool.add(records[2:])
    assert (spool.held, spool.pending, spool.lost) == (3, 3, 2)
    assert [r for _, r in spool.oldest(10)] == records[:3]  # the oldest kept, in order


def test_a_stop_during_an_outage_drops_nothing_silently(
    store: AuditStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 24: a stop while the database was down dropped what was held in memory without a
    line or a count. Now: in the spool file, kept for the next start (and said so); held in
    memory only (no file), counted as dropped and logged."""
    unreachable = AuditStore(URL.create("sqlite", database=str(tmp_path / "nodir" / "x" / "a.db")))
    unreachable.migrate = lambda: (_ for _ in ()).throw(OperationalError("connect", {}, OSError()))  # type: ignore[method-assign]
    records = [decision_record([("A", f"c{i}", "meets-criteria", [])]) for i in range(3)]
    in_file = AuditWriter(unreachable, batch_window=0.0, spool=AuditSpool(tmp_path / "s.sqlite3"))
    in_memory = AuditWriter(unreachable, batch_window=0.0, spool=AuditSpool(None))
    for writer in (in_file, in_memory):
        for record in records:
            writer.submit(record)
        writer.close()
    assert in_file.health()["spooled"] == 3 and in_file.health()["dropped"] == 0
    assert in_memory.health()["dropped"] == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("3 records in the spool file" in m for m in messages)
    assert any("3 records held in memory" in m and "lost" in m for m in messages)
