"""JWT replay protection: a client token's `jti` is accepted once, until the token expires
(CDS Hooks 2.0 §trusting-cds-clients: the service SHOULD use `jti` to detect replays).

Two caches behind one call, `await cache.first_use(iss, jti, expires)`:
- `MemoryReplayCache`, per process: enough for one worker.
- `DatabaseReplayCache`, the `auth_seen_jti` table in the audit database: every worker and
  replica sharing the database sees every jti. One statement per call, an upsert that inserts
  the row or, when the jti is already there, takes it over only if that row has expired; the
  primary key makes it atomic on PostgreSQL and SQLite alike (two workers racing with one token:
  one gets the row). Expired rows are deleted at most once a minute per process, off the call.

The database cache fails closed: when the database cannot say whether a jti is new (unreachable,
slow, not migrated) the call is refused with `ReplayCheckUnavailable` (a 503 for the client),
never let through; a token checked against a cache that cannot answer could be a replay. The
statement runs on a small thread pool of its own (the engine is synchronous SQLAlchemy), so a
stalled database holds neither the event loop nor the threads evaluation uses, and the wait is
cut at `CHECK_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, cast

from sqlalchemy import Engine, Table, create_engine, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from cds_service.audit.models import SeenJtiRow
from cds_service.audit.store import make_engine
from cds_service.audit.writer import StorageUnavailable, describe

log = logging.getLogger("cds_service.auth")
CHECK_TIMEOUT_S = 2.0  # a jti check normally takes about a millisecond
PURGE_INTERVAL_S = 60.0
THREADS = 4  # concurrent checks (and pooled connections) per process
_SEEN = cast(Table, SeenJtiRow.__table__)


class ReplayCheckUnavailable(Exception):
    """The cache cannot tell whether this jti is new; the call must be refused (fail closed)."""


class ReplayCache(Protocol):
    async def first_use(self, issuer: str, jti: str, expires: float) -> bool: ...

    def health(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class MemoryReplayCache:
    """`jti` values seen, per issuer, kept until their token expires (plus leeway). Bounded: when
    full of unexpired entries it refuses new tokens rather than forgetting (fail closed)."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: dict[tuple[str, str], float] = {}
        self._queue: list[tuple[float, tuple[str, str]]] = []

    async def first_use(self, issuer: str, jti: str, expires: float) -> bool:
        now = self._clock()
        while self._queue and self._queue[0][0] < now:
            _, key = heapq.heappop(self._queue)
            if self._expiry.get(key, now) < now:
                del self._expiry[key]
        key = (issuer, jti)
        if key in self._expiry:
            return False
        if len(self._expiry) >= self._max_entries:
            raise ReplayCheckUnavailable("replay cache full")
        self._expiry[key] = expires
        heapq.heappush(self._queue, (expires, key))
        return True

    def health(self) -> dict[str, str]:
        return {"backend": "memory", "status": "ok"}

    def close(self) -> None:
        pass


def digest(issuer: str, jti: str) -> str:
    """A jti is unique per issuer: the key is both, hashed (fixed size; the issuer is from the
    allowlist, so the separator keeps pairs apart)."""
    return hashlib.sha256(f"{issuer}\0{jti}".encode()).hexdigest()


def replay_engine(url: URL) -> Engine:
    """Autocommit (one round trip per check), its own small pool, short timeouts. On PostgreSQL
    the commit does not wait for the WAL flush (synchronous_commit=off): the row is visible to
    every session at once, and only a crash of the database server itself could forget the last
    fraction of a second of jtis; a check costs a fraction of a flushed commit
    (tools/replay_cache.py). SQLite keeps its full fsync: the table shares the audit file, which
    a weaker mode could corrupt on a power loss with a rollback journal."""
    if url.get_backend_name() == "sqlite":
        return make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=THREADS,
        max_overflow=0,
        pool_timeout=CHECK_TIMEOUT_S,
        connect_args={
            "connect_timeout": max(1, int(CHECK_TIMEOUT_S)),
            "options": f"-c synchronous_commit=off -c statement_timeout={int(CHECK_TIMEOUT_S * 1000)}",
        },
    )


class DatabaseReplayCache:
    """`ready` makes sure the table exists (the audit writer's migration) before the first check."""

    def __init__(
        self, url: URL, ready: Callable[[], object], clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = replay_engine(url)
        self._ready = ready
        self._migrated = False
        self._clock = clock
        self._next_purge = 0.0
        self.last_error: str | None = None  # of the latest check; None when it succeeded
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="jti-check")

    async def first_use(self, issuer: str, jti: str, expires: float) -> bool:
        check = asyncio.get_running_loop().run_in_executor(
            self._threads, self._insert, digest(issuer, jti), int(expires)
        )
        try:
            first = await asyncio.wait_for(check, CHECK_TIMEOUT_S)
        except TimeoutError as error:
            self.last_error = f"no answer within {CHECK_TIMEOUT_S:g} s"
            raise ReplayCheckUnavailable(self.last_error) from error
        except (SQLAlchemyError, StorageUnavailable) as error:
            self.last_error = describe(error)
            raise ReplayCheckUnavailable(self.last_error) from error
        self.last_error = None
        return first

    def health(self) -> dict[str, str]:
        report = {"backend": "database", "status": "unavailable" if self.last_error else "ok"}
        return report | ({"lastError": self.last_error} if self.last_error else {})

    def _insert(self, key: str, expires: int) -> bool:
        if not self._migrated:
            self._ready()
            self._migrated = True
        now = int(self._clock())
        upsert = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(
            _SEEN
        )
        statement = (
            upsert.values(digest=key, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[_SEEN.c.digest],
                set_={"expires_at": expires},
                where=_SEEN.c.expires_at < now,  # a live row stays: the token is a replay
            )
            .returning(_SEEN.c.digest)  # a row back: inserted (or an expired one taken over)
        )
        inserted = self._execute(statement)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL_S
            self._threads.submit(self._purge, now)
        return inserted

    def _execute(self, statement: Any) -> bool:
        """Whether the statement returned a row. A pooled connection the database dropped (a
        restart) is tried once more on a fresh one rather than failing the call."""
        for attempt in (1, 2):
            try:
                with self.engine.connect() as connection:
                    result = connection.execute(statement)
                    return result.returns_rows and result.first() is not None
            except DBAPIError as error:
                if attempt == 2 or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def _purge(self, now: int) -> None:
        try:
            self._execute(delete(_SEEN).where(_SEEN.c.expires_at < now))
        except SQLAlchemyError as error:
            log.warning("expired jti rows not purged: %s", describe(error))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()
