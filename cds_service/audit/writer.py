"""Background audit writer: the request path only enqueues (never waits on storage).

One daemon thread drains a bounded queue into the store, in batches: after the first record
it waits a moment (BATCH_WINDOW) so that a busy service stores many decisions per transaction.
That keeps the thread's share of the GIL, which the answers pay for, small (about 0.14 ms per
decision on SQLite instead of 1 ms).
When the database is unreachable the records go to the local spool (audit/spool.py), and every
RETRY_SECONDS the writer replays the spool, oldest first, before anything newer; a record the
database refuses is set aside in the spool (counted) without marking the storage unhealthy.
Only a full queue, or a full memory hold while neither database nor spool file can be written,
loses a record: it is logged (hookInstance only) and counted.
The first thing the thread does is create / migrate the database, so a fresh install has
its audit tables right after start, with no set-up step.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
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
        self._last_replay = 0.0
        self.status = "starting"
        self.last_error: str | None = None
        self._queue: queue.Queue[DecisionRecord | threading.Event | None] = queue.Queue(capacity)
        self._migrated = False
        self._lock = threading.Lock()
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    # --- request side ----------------------------------------------------------------------
    def submit(self, record: DecisionRecord) -> None:
        """Never blocks: a full queue drops the record (logged and counted)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.counts["dropped"] += 1
            log.error(
                "audit queue full: record for hookInstance=%s dropped (%d dropped so far)",
                record.hook_instance,
                self.counts["dropped"],
            )

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
        report: dict[str, Any] = {
            "status": self.status,
            "backend": self.store.backend,
            "queued": self._queue.qsize(),
            "written": self.counts["written"],
            "dropped": self.counts["dropped"] + self.spool.lost,
            "spooled": self.spool.pending,  # in the spool file, or in memory when it is unwritable
            "heldInMemory": self.spool.held,
            "refused": self.spool.refused,
        }
        if self.last_error:
            report["lastError"] = self.last_error
        return report

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record submitted so far has been handled (stored or failed)."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to `timeout`), stop the thread, release connections."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._queue.put(None)
        self._wake.set()
        self._thread.join(timeout)
        self.spool.close()
        self.store.close()

    # --- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        self.spool.open()
        try:
            self.ready_store()
            self.status = "ok"
        except StorageUnavailable:
            pass  # logged; every batch retries the migration
        if self.spool.pending:
            self._replay()
        while True:
            try:
                if not self._step():
                    return
            except Exception as error:  # the thread must outlive any one failure
                log.error("audit writer step failed: %s", describe(error))

    def _step(self) -> bool:
        """One batch (or one replay attempt when idle with a spool); False when told to stop."""
        try:
            first = self._queue.get(timeout=RETRY_SECONDS if self.spool.pending else None)
        except queue.Empty:
            self._replay()
            return True
        if isinstance(first, DecisionRecord):
            # Let a batch gather. The thread sleeps on its own event, not on the queue,
            # so the records that arrive meanwhile do not wake it one by one (every wake-up
            # takes the GIL from the answers); flush() and close() cut the wait short.
            self._wake.wait(self.batch_window)
        self._wake.clear()
        go_on = self._handle([first, *self._drain()])
        if self.spool.pending and time.monotonic() - self._last_replay >= RETRY_SECONDS:
            self._replay()
        return go_on

    def _drain(self) -> list[DecisionRecord | threading.Event | None]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _handle(self, items: list[DecisionRecord | threading.Event | None]) -> bool:
        """Write the records in order, in batches; answer each flush once what came before it
        is written. False when told to stop."""
        batch: list[DecisionRecord] = []
        for item in items:
            if isinstance(item, DecisionRecord):
                batch.append(item)
                if len(batch) < BATCH_MAX:
                    continue
            if batch:
                self._write(batch)
                batch = []
            if isinstance(item, threading.Event):
                item.set()
            elif item is None:
                return False
        if batch:
            self._write(batch)
        return True

    def _write(self, batch: list[DecisionRecord]) -> None:
        if self.spool.pending:  # older records wait there: nothing may overtake them
            self._to_spool(batch)
            return
        try:
            self.ready_store().add_decisions(batch)
        except StorageUnavailable:
            self._to_spool(batch)  # logged already
            return
        except (DataError, IntegrityError) as error:
            if len(batch) > 1:  # a record the database refuses must not take its batch along
                for record in batch:
                    self._write([record])
            else:
                self._refused(None, batch[0], error)
            return
        except Exception as error:
            self._failed(error, "audit write failed")
            self._to_spool(batch)
            return
        self.counts["written"] += len(batch)
        self.status, self.last_error = "ok", None

    def _replay(self) -> None:
        """Spooled records into the store, oldest first, until it is empty or fails again."""
        self._last_replay = time.monotonic()
        while self.spool.pending:
            pending = self.spool.oldest(BATCH_MAX)
            if not pending:
                return
            try:
                self.ready_store().add_decisions([r for _, r in pending], skip_stored=True)
            except StorageUnavailable:
                return
            except (DataError, IntegrityError):
                if not self._replay_one_by_one(pending):
                    return
                continue
            except Exception as error:
                self._failed(error, "audit replay failed")
                return
            self.spool.remove([key for key, _ in pending])
            self.counts["written"] += len(pending)
        log.info("audit spool replayed; the store has every record again")
        self.status, self.last_error = "ok", None

    def _replay_one_by_one(self, pending: list[tuple[int | None, DecisionRecord]]) -> bool:
        for key, record in pending:
            try:
                self.store.add_decisions([record], skip_stored=True)
            except (DataError, IntegrityError) as error:
                self._refused(key, record, error)
                continue
            except Exception as error:
                self._failed(error, "audit replay failed")
                return False
            self.spool.remove([key])
            self.counts["written"] += 1
        return True

    def _to_spool(self, batch: list[DecisionRecord]) -> None:
        self.spool.add(batch)
        if self.status != "spooling":  # one line per outage, not one per batch
            log.warning("audit storage unavailable: records go to the local spool until it is back")
        self.status = "spooling"

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
        self.status = "spooling" if self.spool.pending else "unavailable"
        log.error("%s: %s", what, self.last_error)
