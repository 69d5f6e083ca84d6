"""Background audit writer: durable on local disk before the answer, then into the database.

Two daemon threads. The spool thread takes what the requests hand in (a bounded queue) and
writes it to the local spool file (audit/spool.py, fsync'd), all that waits in one transaction
(group commit, about 1 ms here), then tells each request its record is on disk: the answer is
sent only then (api/routes.py waits at most ACK_TIMEOUT_S), so a crash, even kill -9, cannot
lose an answered call's record. The database thread moves the spool into the database, oldest
first, in batches (after a wake-up it lets a batch gather for BATCH_WINDOW, so a busy service
stores many decisions per transaction and the thread's share of the GIL stays small), and
removes what the database took. Nothing waits on the database: when it refuses, fails or hangs
(a write running over WRITE_TIMEOUT_S: `/healthz` degraded) the records simply stay in the
spool and the thread retries every RETRY_SECONDS; a record the database refuses is set aside in
the spool (counted) without marking the storage unhealthy. A write that was committed but not
acknowledged is not stored twice (record ids, `skip_stored`).
Only a full queue, a full memory hold while the spool file cannot be written either, or such
held records at a stop lose a record: each is logged (hookInstance only) and counted.
The database thread first creates / migrates the database, so a fresh install has its audit
tables right after start, with no set-up step.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from cds_service.audit.record import DecisionRecord
from cds_service.audit.spool import AuditSpool
from cds_service.audit.store import AuditStore

log = logging.getLogger("cds_service.audit")
CAPACITY = 5000  # records: a hung database's connect timeout at 100 calls/s, and more
BATCH_WINDOW = 0.1  # seconds from a batch's first record to its write
BATCH_MAX = 200  # records per transaction
RETRY_SECONDS = 1.0  # between attempts to replay the spool into an unreachable database
ACK_TIMEOUT_S = 2.0  # longest an answer waits for its record to be on disk (a full disk)
WRITE_TIMEOUT_S = 5.0  # a database write running longer: the database is reported hung


class StorageUnavailable(Exception):
    pass


def describe(error: Exception) -> str:
    """The error's class and, for driver errors, the driver's first line (host and port, never
    the statement or its parameters)."""
    if isinstance(error, StorageUnavailable):
        return str(error)
    if isinstance(error, DBAPIError) and error.orig is not None:
        first_line = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
        return f"{type(error.orig).__name__}: {first_line[:200]}"
    return type(error).__name__


Stored = Callable[[], None]  # called (on the spool thread) once a record is on disk
_Item = tuple[DecisionRecord, Stored | None] | threading.Event | None


class AuditWriter:
    def __init__(
        self,
        store: AuditStore,
        capacity: int = CAPACITY,
        batch_window: float = BATCH_WINDOW,
        spool: AuditSpool | None = None,
    ) -> None:
        self.store = store
        self.spool = spool or AuditSpool(None)
        self.batch_window = batch_window
        self.counts = {"written": 0, "dropped": 0}
        self.status = "starting"
        self.last_error: str | None = None
        self._queue: queue.Queue[_Item] = queue.Queue(capacity)
        self._migrated = False
        self._lock = threading.Lock()
        self._closed = False
        self._retrying = False  # the last database write failed: the next may find it stored
        self._busy_since: float | None = None  # monotonic start of the running database write
        self._db_wake = threading.Event()  # records spooled, a flush, or the stop
        self._cut_short = threading.Event()  # a flush or the stop: no batch window
        self._flushes: list[threading.Event] = []  # answered after the next database pass
        self._stopping = False
        self._thread = threading.Thread(target=self._run_db, name="audit-writer", daemon=True)
        self._spool_thread = threading.Thread(
            target=self._run_spool, name="audit-spool", daemon=True
        )
        self._spool_thread.start()

    # --- request side ----------------------------------------------------------------------
    def submit(self, record: DecisionRecord, on_stored: Stored | None = None) -> None:
        """Never blocks: a full queue (or a closed writer) drops the record (logged and
        counted). `on_stored` is called once the record is on disk (or dropped)."""
        try:
            if self._closed:
                raise queue.Full
            self._queue.put_nowait((record, on_stored))
        except queue.Full:
            self.counts["dropped"] += 1
            log.error(
                "audit queue full or closed: record for hookInstance=%s dropped (%d dropped so far)",
                record.hook_instance,
                self.counts["dropped"],
            )
            if on_stored is not None:
                on_stored()

    def ready_store(self) -> AuditStore:
        """The store, migrated on first use; StorageUnavailable when the database fails."""
        with self._lock:
            try:
                if not self._migrated:
                    self.store.migrate()
                    self._migrated = True
            except Exception as error:
                self._failed(error, "audit storage could not be migrated")
                raise StorageUnavailable(self.last_error) from error
        return self.store

    def health(self) -> dict[str, Any]:
        status, last_error = self.status, self.last_error
        busy = self._busy_since
        if busy is not None and time.monotonic() - busy > WRITE_TIMEOUT_S:
            # hung: a database that accepts and never answers is as down as one that refuses
            status = "spooling" if self.spool.pending else "unavailable"
            last_error = f"the audit database has not answered for {time.monotonic() - busy:.0f} s"
        report: dict[str, Any] = {
            "status": status,
            "backend": self.store.backend,
            "queued": self._queue.qsize(),
            "written": self.counts["written"],
            "dropped": self.counts["dropped"] + self.spool.lost,
            "spooled": self.spool.pending,  # in the spool file, or in memory when it is unwritable
            "heldInMemory": self.spool.held,
            "refused": self.spool.refused,
        }
        if self.spool.path is not None:
            report["spoolFile"] = self.spool.path.name  # per worker (audit/spool.py)
        if last_error:
            report["lastError"] = last_error
        return report

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record submitted so far has been handled: on disk, then offered to
        the database (stored, or left in the spool because the database failed)."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Spool what is queued, give the database one last pass (up to `timeout`), stop.
        Nothing is dropped silently: what is not in the database stays in the spool file for
        the next start; records only held in memory (the file unwritable) are logged and
        counted as lost."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._spool_thread.join(timeout)
        self._stopping = True
        self._cut_short.set()
        self._db_wake.set()
        self._thread.join(timeout)
        if self.spool.pending:
            log.warning(
                "audit writer stopped with %d records in the spool file %s: replayed at the next start",
                self.spool.pending - self.spool.held,
                self.spool.path,
            )
        if self.spool.held:
            self.counts["dropped"] += self.spool.held
            log.error(
                "audit writer stopped with %d records held in memory (spool file unwritable): lost",
                self.spool.held,
            )
        if self._thread.is_alive():
            return  # hung in the database: its connections die with the process
        self.spool.close()
        self.store.close()

    # --- spool thread ----------------------------------------------------------------------
    def _run_spool(self) -> None:
        self.spool.open()
        self._thread.start()
        while True:
            items = [self._queue.get(), *self._drain()]
            try:
                if not self._spool_items(items):
                    return
            except Exception as error:  # the thread must outlive any one failure
                log.error("audit spool step failed: %s", describe(error))

    def _drain(self) -> list[_Item]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _spool_items(self, items: list[_Item]) -> bool:
        """Everything that waited, on disk in one transaction; then the requests are told,
        flushes passed on to the database thread. False when told to stop."""
        records = [item[0] for item in items if isinstance(item, tuple)]
        if records:
            self.spool.add(records)
        for item in items:
            if isinstance(item, tuple) and item[1] is not None:
                item[1]()
        flushes = [item for item in items if isinstance(item, threading.Event)]
        if flushes:
            with self._lock:
                self._flushes += flushes
            self._cut_short.set()
        self._db_wake.set()
        return None not in items

    # --- database thread -------------------------------------------------------------------
    def _run_db(self) -> None:
        try:
            self._in_database(self.ready_store)
            self.status = "ok"
        except StorageUnavailable:
            pass  # logged; every pass retries the migration
        while True:
            try:
                if not self._db_pass():
                    return
            except Exception as error:  # the thread must outlive any one failure
                log.error("audit writer step failed: %s", describe(error))

    def _db_pass(self) -> bool:
        """Wait for records (or the retry interval), let a batch gather, move the spool into
        the database; answer the flushes that came before. False once stopped."""
        self._db_wake.wait(RETRY_SECONDS if self.spool.pending else None)
        self._db_wake.clear()
        self._cut_short.wait(self.batch_window)
        self._cut_short.clear()
        with self._lock:
            flushes, self._flushes = self._flushes, []
        self._replay()
        for done in flushes:
            done.set()
        return not self._stopping

    def _in_database(self, step: Callable[..., Any], *args: Any) -> Any:
        """`step(*args)` with its start noted, so that health() can tell a hung database."""
        self._busy_since = time.monotonic()
        try:
            return step(*args)
        finally:
            self._busy_since = None

    def _replay(self) -> None:
        """Spooled records into the store, oldest first, until it is empty or fails again."""
        while self.spool.pending:
            pending = self.spool.oldest(BATCH_MAX)
            if not pending:
                return
            records = [r for _, r in pending]
            try:
                self._in_database(self._store, records, self._retrying)
            except StorageUnavailable:
                self._retrying = True
                return
            except (DataError, IntegrityError):
                if not self._replay_one_by_one(pending):
                    return
                continue
            except Exception as error:
                self._failed(error, "audit write failed")
                return
            self.spool.remove([key for key, _ in pending])
            self.counts["written"] += len(pending)
            self._recovered()

    def _store(self, records: list[DecisionRecord], skip_stored: bool) -> None:
        self.ready_store().add_decisions(records, skip_stored=skip_stored)

    def _replay_one_by_one(self, pending: list[tuple[int | None, DecisionRecord]]) -> bool:
        for key, record in pending:
            try:
                self._in_database(self._store, [record], True)
            except (DataError, IntegrityError) as error:
                self._refused(key, record, error)
                continue
            except Exception as error:
                self._failed(error, "audit write failed")
                return False
            self.spool.remove([key])
            self.counts["written"] += 1
        self._recovered()
        return True

    def _recovered(self) -> None:
        if self._retrying:  # one line per outage, not one per batch
            log.info("audit database back: the spool is replayed into it, oldest first")
        self._retrying = False
        self.status, self.last_error = "ok", None

    def _refused(self, key: int | None, record: DecisionRecord, error: Exception) -> None:
        """The database refuses this one record (its data, not the connection): kept aside in
        the spool; the storage is still healthy for the others."""
        self.spool.refuse(key, record, describe(error))
        log.error(
            "audit record for hookInstance=%s refused by the database, kept in the spool: %s",
            record.hook_instance,
            describe(error),
        )

    def _failed(self, error: Exception, what: str) -> None:
        self.last_error = describe(error)
        self._retrying = True
        if self.status != "spooling" and self.spool.pending:  # one line per outage
            log.warning(
                "audit storage unavailable: records wait in the local spool until it is back"
            )
        self.status = "spooling" if self.spool.pending else "unavailable"
        log.error("%s: %s", what, self.last_error)
