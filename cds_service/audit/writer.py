"""Background audit writer: the request path only enqueues (never waits on storage).

One daemon thread drains a bounded queue into the store, in batches: after the first record
it waits a moment (BATCH_WINDOW) so that a busy service stores many decisions per transaction.
That keeps the thread's share of the GIL, which the answers pay for, small (about 0.14 ms per
decision on SQLite instead of 1 ms). A full queue or
a storage failure loses that record: it is logged (hookInstance only) and counted, and
`/healthz` shows it.
The first thing the thread does is create / migrate the database, so a fresh install has
its audit tables right after start, with no set-up step.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from cds_service.audit.record import DecisionRecord
from cds_service.audit.store import AuditStore

log = logging.getLogger("cds_service.audit")
CAPACITY = 1000  # records; at a few ms per write, seconds of backlog (memory stays bounded)
BATCH_WINDOW = 0.1  # seconds from a batch's first record to its write
BATCH_MAX = 200  # records per transaction


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
        self, store: AuditStore, capacity: int = CAPACITY, batch_window: float = BATCH_WINDOW
    ) -> None:
        self.store = store
        self.batch_window = batch_window
        self.counts = {"written": 0, "dropped": 0, "failed": 0}
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
            **self.counts,
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
        self.store.close()

    # --- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.ready_store()
            self.status = "ok"
        except StorageUnavailable:
            pass  # logged; every batch retries the migration
        while True:
            first = self._queue.get()  # idle until there is work
            if isinstance(first, DecisionRecord):
                # Let a batch gather. The thread sleeps on its own event, not on the queue,
                # so the records that arrive meanwhile do not wake it one by one (every wake-up
                # takes the GIL from the answers); flush() and close() cut the wait short.
                self._wake.wait(self.batch_window)
            self._wake.clear()
            if not self._handle([first, *self._drain()]):
                return

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
        try:
            self.ready_store().add_decisions(batch)
        except StorageUnavailable:
            self._lost(batch)  # logged already
            return
        except Exception as error:
            if len(batch) > 1 and isinstance(error, DataError | IntegrityError):
                # a record the database refuses must not take the rest of its batch with it
                for record in batch:
                    self._write([record])
                return
            self._failed(error, "audit write failed")
            self._lost(batch)
            return
        self.counts["written"] += len(batch)
        self.status, self.last_error = "ok", None

    def _lost(self, batch: list[DecisionRecord]) -> None:
        self.counts["failed"] += len(batch)
        for record in batch:
            log.error(
                "audit record for hookInstance=%s not stored (%d lost so far)",
                record.hook_instance,
                self.counts["failed"],
            )

    def _failed(self, error: Exception, what: str) -> None:
        self.status, self.last_error = "unavailable", describe(error)
        log.error("%s: %s", what, self.last_error)
