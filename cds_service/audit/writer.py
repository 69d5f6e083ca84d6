"""Background audit writer: the request path only enqueues (never waits on storage).

One daemon thread drains a bounded queue into the store. A full queue or a storage failure
loses that record: it is logged (hookInstance only) and counted, and `/healthz` shows it.
The first thing the thread does is create / migrate the database, so a fresh install has
its audit tables right after start, with no set-up step.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from sqlalchemy.exc import DBAPIError

from cds_service.audit.record import DecisionRecord
from cds_service.audit.store import AuditStore

log = logging.getLogger("cds_service.audit")
CAPACITY = 1000  # records; at a few ms per write, seconds of backlog (memory stays bounded)


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
    def __init__(self, store: AuditStore, capacity: int = CAPACITY) -> None:
        self.store = store
        self.counts = {"written": 0, "dropped": 0, "failed": 0}
        self.status = "starting"
        self.last_error: str | None = None
        self._queue: queue.Queue[DecisionRecord | threading.Event | None] = queue.Queue(capacity)
        self._migrated = False
        self._lock = threading.Lock()
        self._closed = False
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
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to `timeout`), stop the thread, release connections."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)
        self.store.close()

    # --- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.ready_store()
            self.status = "ok"
        except StorageUnavailable:
            pass  # logged; every record retries the migration
        while (item := self._queue.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
            else:
                self._write(item)

    def _write(self, record: DecisionRecord) -> None:
        try:
            self.ready_store().add_decision(record)
        except Exception as error:
            self.counts["failed"] += 1
            if not isinstance(error, StorageUnavailable):  # that one is logged already
                self._failed(error, "audit write failed")
            log.error(
                "audit record for hookInstance=%s not stored (%d lost so far)",
                record.hook_instance,
                self.counts["failed"],
            )
            return
        self.counts["written"] += 1
        self.status, self.last_error = "ok", None

    def _failed(self, error: Exception, what: str) -> None:
        self.status, self.last_error = "unavailable", describe(error)
        log.error("%s: %s", what, self.last_error)
