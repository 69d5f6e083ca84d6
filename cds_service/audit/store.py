"""Audit storage: engine, migrations, writes and queries, on SQLite or PostgreSQL.

Migrations are Alembic scripts shipped in the package (`migrations/`), run programmatically,
so a wheel install can migrate and no alembic.ini exists. Concurrent starts are safe: on
PostgreSQL a transaction-scoped advisory lock serialises replicas, on SQLite a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, selectinload, sessionmaker

from cds_service.audit.feedback import FeedbackItem
from cds_service.audit.models import (
    CardRow,
    CriterionRow,
    DecisionRow,
    EvaluationRow,
    FeedbackRow,
)
from cds_service.audit.record import DecisionRecord

_WHOLE_DECISION = (
    selectinload(DecisionRow.evaluations).selectinload(EvaluationRow.criteria),
    selectinload(DecisionRow.cards),
)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x0CD5A0D1  # arbitrary, fixed: pg_advisory_xact_lock id of this schema
# Alembic keeps the running migration's context in module globals (alembic.context, alembic.op),
# so two migrations in one process, even of different databases, must not overlap: one thread's
# env.py would run against the other's connection ("table already exists", KeyError 'script').
_ALEMBIC_IN_THIS_PROCESS = threading.Lock()
CONNECT_TIMEOUT_S = 5


def database_url(data_dir: Path, configured: str | None) -> URL:
    """`DATABASE_URL` if set (postgres:// and postgresql:// use psycopg 3), else the SQLite
    file `<data dir>/audit.sqlite3`."""
    if not configured:
        return URL.create("sqlite", database=str(data_dir.resolve() / "audit.sqlite3"))
    return with_driver(configured)


def with_driver(configured: str) -> URL:
    """The URL as SQLAlchemy needs it: plain postgres:// / postgresql:// mean psycopg 3."""
    url = make_url(configured)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    """No memory-mapped file: WAL maps its index (`-shm`) into memory, and a write to that map
    once the file is immutable, read-only or on a full disk kills the process with SIGBUS (no
    error to catch); a rollback journal only ever gets an error back, which the writer spools.
    Readers (the CLI, other workers) and the writer take turns, waiting up to the busy timeout."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # for ON DELETE CASCADE (purge)
    # PERSIST: the journal file is kept and its header zeroed, not deleted after each commit (a
    # commit then costs its fsyncs, not a directory change too: 1 ms instead of 11 ms here).
    # Also turns the database of an older run out of WAL.
    cursor.execute("PRAGMA journal_mode=PERSIST")
    cursor.execute("PRAGMA journal_size_limit=4194304")  # what a big purge leaves is cut back
    cursor.execute("PRAGMA mmap_size=0")  # the database file itself is read with read() too
    cursor.execute(f"PRAGMA busy_timeout={CONNECT_TIMEOUT_S * 1000}")
    cursor.close()


def make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": CONNECT_TIMEOUT_S}, json_serializer=_json_text
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        json_serializer=_json_text,
    )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()  # JSON cells (evidence lists): several per decision


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    patient: str | None = None
    policy: str | None = None
    determination: str | None = None


class AuditStore:
    def __init__(self, url: URL) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    def close(self) -> None:
        self.engine.dispose()

    # --- schema ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        database = self.url.database
        if self.backend != "sqlite" or not database or database == ":memory:":
            yield
            return
        # A POSIX record lock, not flock(): a flock belongs to the open file, which a process
        # forked meanwhile (the large-call worker, api/offload.py) shares and never closes, so
        # the lock outlived this migration and every later writer of the file hung. A record
        # lock belongs to this process alone; threads of this process are kept apart by
        # _ALEMBIC_IN_THIS_PROCESS.
        with open(f"{database}.migrate-lock", "w") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX)
            yield

    def migrate(self) -> None:
        """Create or upgrade the tables to the newest migration; safe to run concurrently."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with _ALEMBIC_IN_THIS_PROCESS, self._file_lock(), self.engine.begin() as connection:
            if self.backend == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    # --- writes ----------------------------------------------------------------------------
    def add_decision(self, record: DecisionRecord) -> int:
        return self.add_decisions([record])[0]

    def add_decisions(self, records: list[DecisionRecord], skip_stored: bool = False) -> list[int]:
        """Store decisions in one transaction, linking feedback that arrived before them
        (another replica); their row ids, in order.

        Core bulk inserts, a handful of statements per batch rather than per decision: the
        writer thread shares the GIL with the request path, so its CPU time is the answers'
        cost (a decision is ~70 rows)."""
        with self.engine.begin() as connection:
            if skip_stored:  # a replay: what an earlier, unacknowledged commit stored is kept once
                records = self._unstored(connection, records)
            if not records:
                return []
            decision_ids: list[int] = list(
                connection.scalars(
                    insert(DecisionRow).returning(DecisionRow.id, sort_by_parameter_order=True),
                    [
                        {
                            "recorded_at": r.recorded_at,
                            "hook_instance": r.hook_instance,
                            "service_id": r.service_id,
                            "hook": r.hook,
                            "client_iss": r.client_iss,
                            "patient_id": r.patient_id,
                            "orders": list(r.orders),
                            "data_source": r.data_source,
                            "latency_ms": r.latency_ms,
                            "record_id": r.record_id,
                            "payer": r.payer,
                            "crd_version": r.crd_version,
                            "http_status": r.http_status,
                            "token_use": r.token_use,
                            "sources": r.sources,
                        }
                        for r in records
                    ],
                )
            )
            decision_of_card = {
                c.uuid: decision_id
                for decision_id, r in zip(decision_ids, records, strict=True)
                for c in r.cards
            }
            if decision_of_card:
                connection.execute(
                    insert(CardRow),
                    [
                        {"decision_id": decision_of_card[c.uuid], "uuid": c.uuid, "suggestion_uuids": list(c.suggestion_uuids)}
                        for r in records
                        for c in r.cards
                    ],
                )  # fmt: skip
                self._link_early_feedback(connection, decision_of_card)
            evaluations = [
                (decision_id, e)
                for decision_id, r in zip(decision_ids, records, strict=True)
                for e in r.evaluations
            ]
            if not evaluations:
                return decision_ids
            evaluation_ids = connection.scalars(
                insert(EvaluationRow).returning(EvaluationRow.id, sort_by_parameter_order=True),
                [
                    {
                        "decision_id": decision_id,
                        "order_ref": e.order,
                        "service": e.service,
                        "policy_id": e.policy_id,
                        "policy_version": e.policy_version,
                        "determination": e.determination,
                        "card_uuid": e.card_uuid,
                        "coverage_assertion_id": e.coverage_assertion_id,
                        "coverage_info": e.coverage_info,
                    }
                    for decision_id, e in evaluations
                ],
            ).all()
            criteria = [
                {"evaluation_id": evaluation_id, "criterion_id": c.id, "status": c.status, "evidence": list(c.evidence)}
                for evaluation_id, (_, e) in zip(evaluation_ids, evaluations, strict=True)
                for c in e.criteria
            ]  # fmt: skip
            if criteria:
                connection.execute(insert(CriterionRow), criteria)
            return decision_ids

    @staticmethod
    def _unstored(connection: Connection, records: list[DecisionRecord]) -> list[DecisionRecord]:
        stored = set(
            connection.scalars(
                select(DecisionRow.record_id).where(
                    DecisionRow.record_id.in_([r.record_id for r in records])
                )
            )
        )
        return [r for r in records if r.record_id not in stored]

    @staticmethod
    def _link_early_feedback(connection: Connection, decision_of_card: dict[str, int]) -> None:
        """Feedback stored before its decision (unknown card then) now points at it. Usually
        there is none: one indexed look-up, and an update only for what it finds."""
        early = connection.execute(
            select(FeedbackRow.id, FeedbackRow.card_uuid)
            .where(FeedbackRow.decision_id.is_(None))
            .where(FeedbackRow.card_uuid.in_(list(decision_of_card)))
        ).all()
        for feedback_id, card_uuid in early:
            connection.execute(
                update(FeedbackRow)
                .where(FeedbackRow.id == feedback_id)
                .values(decision_id=decision_of_card[card_uuid])
            )

    def add_feedback(
        self,
        items: list[FeedbackItem],
        service_id: str,
        received_at: datetime,
        client_iss: str | None = None,
    ) -> list[FeedbackRow]:
        """Store feedback, each linked to the decision that returned its card (None: unknown)."""
        with self._session.begin() as session:
            uuids = {item.card for item in items}
            decision_of = {
                card: decision
                for card, decision in session.execute(
                    select(CardRow.uuid, CardRow.decision_id).where(CardRow.uuid.in_(uuids))
                )
            }
            rows = [
                _feedback_row(item, decision_of.get(item.card), received_at, service_id, client_iss)
                for item in items
            ]
            session.add_all(rows)
        return rows

    def purge(self, before: datetime) -> tuple[int, int]:
        """Delete decisions recorded before `before` (their evaluations, criteria, cards and
        feedback cascade) and unlinked feedback received before it. Returns both counts."""
        with self._session.begin() as session:
            decisions = session.execute(delete(DecisionRow).where(DecisionRow.recorded_at < before))
            orphans = session.execute(
                delete(FeedbackRow)
                .where(FeedbackRow.decision_id.is_(None))
                .where(FeedbackRow.received_at < before)
            )
            return decisions.rowcount, orphans.rowcount  # type: ignore[attr-defined]

    # --- reads -----------------------------------------------------------------------------
    def session(self) -> Session:
        return self._session()

    def decisions(
        self, where: AuditFilter, limit: int | None = None, after_id: int = 0
    ) -> list[DecisionRow]:
        """Matching decisions in the order they were stored (ids above `after_id`)."""
        query = (
            select(DecisionRow)
            .where(DecisionRow.id > after_id)
            .options(*_WHOLE_DECISION)
            .order_by(DecisionRow.id)
            .limit(limit)
        )
        if where.since:
            query = query.where(DecisionRow.recorded_at >= where.since)
        if where.until:
            query = query.where(DecisionRow.recorded_at < where.until)
        if where.patient:
            query = query.where(DecisionRow.patient_id == where.patient)
        matching = []
        if where.policy:
            matching.append(EvaluationRow.policy_id == where.policy)
        if where.determination:
            matching.append(EvaluationRow.determination == where.determination)
        if matching:
            query = query.where(DecisionRow.evaluations.any(and_(*matching)))
        with self.session() as session:
            return list(session.scalars(query))

    def find(self, key: str) -> DecisionRow | None:
        """A decision by its row id or by hookInstance (the latest call with that instance)."""
        condition = DecisionRow.hook_instance == key
        if key.isdigit():
            condition = or_(condition, DecisionRow.id == int(key))
        query = (
            select(DecisionRow)
            .where(condition)
            .options(*_WHOLE_DECISION)
            .order_by(DecisionRow.id.desc())
            .limit(1)
        )
        with self.session() as session:
            return session.scalars(query).first()

    def assertion(self, assertion_id: str) -> DecisionRow | None:
        """The decision that returned the CRD coverage-assertion-id `assertion_id` (one per
        coverage and response: every order it covers is in that decision)."""
        query = (
            select(DecisionRow)
            .where(
                DecisionRow.evaluations.any(EvaluationRow.coverage_assertion_id == assertion_id)
            )
            .options(*_WHOLE_DECISION)
            .order_by(DecisionRow.id)
            .limit(1)
        )
        with self.session() as session:
            return session.scalars(query).first()

    def feedback(self, decision_ids: list[int]) -> dict[int, list[FeedbackRow]]:
        query = (
            select(FeedbackRow)
            .where(FeedbackRow.decision_id.in_(decision_ids))
            .order_by(FeedbackRow.outcome_timestamp, FeedbackRow.id)
        )
        found: dict[int, list[FeedbackRow]] = {i: [] for i in decision_ids}
        with self.session() as session:
            for row in session.scalars(query):
                found[row.decision_id or 0].append(row)
        return found


def _feedback_row(
    item: FeedbackItem,
    decision_id: int | None,
    received_at: datetime,
    service_id: str,
    client_iss: str | None,
) -> FeedbackRow:
    override = item.overrideReason
    reason = override.reason if override else None
    return FeedbackRow(
        received_at=received_at,
        service_id=service_id,
        client_iss=client_iss,
        card_uuid=item.card,
        decision_id=decision_id,
        outcome=item.outcome,
        outcome_timestamp=item.outcomeTimestamp,
        accepted_suggestions=[s.id for s in item.acceptedSuggestions or ()],
        reason_system=reason.system if reason else None,
        reason_code=reason.code if reason else None,
        reason_display=reason.display if reason else None,
        user_comment=override.userComment if override else None,
    )
