"""The audit spool: a local SQLite file that holds decision records while the audit database is
unreachable, until the writer replays them, oldest first.

WAL without shared memory: the spool file belongs to one process (the `.lock` below), so its
connection holds it in EXCLUSIVE locking mode, set before WAL is entered; SQLite then keeps the
WAL index on the heap and never maps a `-shm` file (sqlite.org/wal.html, "Use of WAL Without
Shared-Memory"), whose write on a full disk or an immutable file would kill the process with
SIGBUS. A write only ever gets an error back. A WAL commit is one append and one fsync (0.15 ms
here) where a rollback journal took three (0.5 ms), and every answer waits for one.
`synchronous=FULL`: a record the spool accepted survives a crash. If the spool file itself cannot be written (the same full
disk), records wait in memory, still in order (at most HELD_MAX, counted), and go to the file or
the database first when either takes them again. Records the database refuses (not unreachable: the record itself is
rejected) go to a separate table, kept for an operator, so one bad record cannot block the rest.
The writer's two threads share it (the spool thread adds, the database thread reads and
removes): every method holds the spool's lock.

One file per worker process: several workers on one data dir (`cds-service serve --workers N`)
each take the first file of the series no other live process holds (a POSIX record lock on a
`.lock` beside it, released when the process ends, even by kill -9), so no two processes ever
count or replay the same file; a restarted worker takes a free one again and replays what an
earlier process left there. The first of the series is the file a single process always used.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import URL

from cds_service.audit.record import CardRecord, CriterionRecord, DecisionRecord, EvaluationRecord

log = logging.getLogger("cds_service.audit")
HELD_MAX = 20_000  # records waiting in memory when neither database nor spool file takes them
FILE_RETRY_S = 1.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spooled (seq INTEGER PRIMARY KEY AUTOINCREMENT, record BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS refused (seq INTEGER PRIMARY KEY AUTOINCREMENT, record BLOB NOT NULL, why TEXT NOT NULL)",
)  # fmt: skip


_TAKEN_HERE: set[Path] = set()  # spool files this process holds (a record lock is per process)
_TAKEN_LOCK = threading.Lock()
MAX_SPOOL_FILES = 64  # workers on one data dir


def spool_path(data_dir: Path, url: URL) -> Path:
    """One spool per audit database, so records wait for the database they were meant for."""
    name = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:12]
    return data_dir.resolve() / f"audit-spool-{name}.sqlite3"


def dump(record: DecisionRecord) -> bytes:
    """orjson serialises dataclasses itself, nested ones included: the same bytes as
    `dataclasses.asdict` first (tests/test_audit_spool.py), in 2 µs rather than 70 µs of the
    interpreter lock while the answer waits for its record."""
    return orjson.dumps(record)


def load(data: bytes) -> DecisionRecord:
    fields: dict[str, Any] = orjson.loads(data)
    return DecisionRecord(
        **fields
        | {
            "recorded_at": datetime.fromisoformat(fields["recorded_at"]),
            "orders": tuple(fields["orders"]),
            "evaluations": tuple(
                EvaluationRecord(
                    **e
                    | {
                        "criteria": tuple(
                            CriterionRecord(c["id"], c["status"], tuple(c["evidence"]))
                            for c in e["criteria"]
                        )
                    }
                )
                for e in fields["evaluations"]
            ),
            "cards": tuple(
                CardRecord(c["uuid"], tuple(c["suggestion_uuids"])) for c in fields["cards"]
            ),
        }
    )


class AuditSpool:
    """`path` None: memory only (tests, and a data dir that cannot be written)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._held: list[DecisionRecord] = []  # in order, after everything in the file
        self._in_file = 0
        self.refused = 0
        self.lost = 0  # over HELD_MAX while nothing could be written: logged and counted
        self._file_retry_at = 0.0  # monotonic; after a failed write, the file waits till then
        self._lock = threading.RLock()
        self._lock_file: Any = None

    @property
    def pending(self) -> int:
        return self._in_file + len(self._held)

    @property
    def held(self) -> int:
        return len(self._held)

    def open(self) -> None:
        """Take a free file of the series and open it; records a previous run left there are
        pending again."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path = self._take(self.path)
            # opened by the spool thread, used by both writer threads under self._lock
            db = sqlite3.connect(
                self.path, timeout=5, isolation_level=None, check_same_thread=False
            )
            # EXCLUSIVE before WAL: no shared-memory index (see the module docstring)
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise sqlite3.OperationalError("the spool file cannot enter WAL mode")
            db.execute("PRAGMA journal_size_limit=4194304")  # a replayed backlog is cut back
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA mmap_size=0")  # no memory map at all: a fault is an error
            for statement in _SCHEMA:
                db.execute(statement)
            self._in_file = db.execute("SELECT count(*) FROM spooled").fetchone()[0]
            self.refused = db.execute("SELECT count(*) FROM refused").fetchone()[0]
            self._db = db
        except (OSError, sqlite3.Error) as error:
            log.error("audit spool %s unusable, holding records in memory: %s", self.path, error)
        if self._in_file:
            log.warning("audit spool holds %d records from an earlier run", self._in_file)

    def _take(self, first: Path) -> Path:
        """The first file of the series `first`, `first`-1, ... that no live process holds."""
        for index in range(MAX_SPOOL_FILES):
            path = first if index == 0 else first.with_name(f"{first.stem}-{index}{first.suffix}")
            with _TAKEN_LOCK:
                if path in _TAKEN_HERE:
                    continue
                handle = open(f"{path}.lock", "a")  # noqa: SIM115 - held until close()
                try:
                    fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.close()
                    continue
                _TAKEN_HERE.add(path)
                self._lock_file = handle
                return path
        raise OSError(f"all {MAX_SPOOL_FILES} spool files of {first} are in use")

    def add(self, records: list[DecisionRecord]) -> None:
        with self._lock:
            self._add(records)

    def _add(self, records: list[DecisionRecord]) -> None:
        """Never raises: what the file cannot take waits in memory, in order, up to HELD_MAX
        (beyond that the newest are lost, logged by hookInstance and counted). A file that
        failed is tried again after FILE_RETRY_S, not on every batch: each try serialises
        everything held, on the interpreter lock the answers need."""
        if self._db is not None and self._held and time.monotonic() >= self._file_retry_at:
            self._held = self._to_file(self._held)
        if self._held:
            self._hold(records)
            return
        self._hold(self._to_file(records))

    def _hold(self, records: list[DecisionRecord]) -> None:
        room = max(0, HELD_MAX - len(self._held))
        self._held.extend(records[:room])
        for record in records[room:]:
            self.lost += 1
            log.error(
                "audit record for hookInstance=%s lost: database, spool file and memory (%d "
                "records) all full (%d lost so far)",
                record.hook_instance,
                HELD_MAX,
                self.lost,
            )

    def _to_file(self, records: list[DecisionRecord]) -> list[DecisionRecord]:
        """The records the file could not take (all or none)."""
        if self._db is None:
            return list(records)
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO spooled (record) VALUES (?)", [(dump(r),) for r in records]
                )
        except sqlite3.Error as error:
            self._file_retry_at = time.monotonic() + FILE_RETRY_S
            log.error(
                "audit spool write failed, %d records held in memory: %s", len(records), error
            )
            return list(records)
        self._in_file += len(records)
        return []

    def oldest(self, limit: int) -> list[tuple[int | None, DecisionRecord]]:
        """Up to `limit` of the oldest pending records, with their file key (None: in memory)."""
        with self._lock:
            return self._oldest(limit)

    def _oldest(self, limit: int) -> list[tuple[int | None, DecisionRecord]]:
        if self._in_file and self._db is not None:
            try:
                rows = self._db.execute(
                    "SELECT seq, record FROM spooled ORDER BY seq LIMIT ?", (limit,)
                ).fetchall()
            except sqlite3.Error as error:
                log.error("audit spool read failed: %s", error)
                return []
            return [(seq, load(data)) for seq, data in rows]
        return [(None, r) for r in self._held[:limit]]

    def remove(self, keys: list[int | None]) -> None:
        """Forget records the store now has (the keys `oldest` gave)."""
        with self._lock:
            self._remove(keys)

    def _remove(self, keys: list[int | None]) -> None:
        in_file = [(k,) for k in keys if k is not None]
        if in_file and self._db is not None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")  # one fsync for the batch, not one each
                self._db.executemany("DELETE FROM spooled WHERE seq = ?", in_file)
            self._in_file -= len(in_file)
        del self._held[: len(keys) - len(in_file)]

    def refuse(self, key: int | None, record: DecisionRecord, why: str) -> None:
        """Set a record the database refuses aside, kept, so the rest can be replayed."""
        with self._lock:
            self._refuse(key, record, why)

    def _refuse(self, key: int | None, record: DecisionRecord, why: str) -> None:
        self.refused += 1
        if self._db is not None:
            try:
                with self._db:
                    self._db.execute(
                        "INSERT INTO refused (record, why) VALUES (?, ?)", (dump(record), why)
                    )
            except sqlite3.Error as error:
                log.error("audit spool cannot keep a refused record: %s", error)
        if key is not None or record in self._held:
            self._remove([key])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._lock_file is not None:
                with _TAKEN_LOCK:
                    _TAKEN_HERE.discard(self.path)
                self._lock_file.close()  # the record lock goes with it
                self._lock_file = None
