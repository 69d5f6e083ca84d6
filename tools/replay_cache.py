"""The cost of the JWT replay check (api/replay.py) per call: in memory, on SQLite and on
PostgreSQL (the local test server, a scratch database), with synchronous_commit off (what the
service uses) and on.

    .venv/bin/python tools/replay_cache.py [checks]

Per backend: the statement alone in the calling thread (what the event loop would pay if it ran
the check itself), the awaited check through the cache's own threads (what a call pays), and the
event-loop thread's own CPU time per awaited check (what the other calls on the loop pay).
"""

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from cds_service.api.replay import DatabaseReplayCache, MemoryReplayCache, ReplayCache, digest
from cds_service.audit.store import AuditStore
from tests.audit_db import postgres_database

CHECKS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"p50 {statistics.median(ordered) * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms"


async def awaited(cache: ReplayCache) -> tuple[list[float], float]:
    """Per-check latency, and the event-loop thread's own CPU time per check (what the other
    requests on the loop pay: submitting to the threads, waking up, the coroutine)."""
    samples = []
    expires = time.time() + 300
    cpu = time.thread_time()
    for _ in range(CHECKS):
        started = time.perf_counter()
        assert await cache.first_use("https://ehr.example.org", uuid.uuid4().hex, expires)
        samples.append(time.perf_counter() - started)
    return samples, (time.thread_time() - cpu) / CHECKS


def inline(cache: DatabaseReplayCache) -> list[float]:
    samples = []
    expires = int(time.time()) + 300
    for _ in range(CHECKS):
        key = digest("https://ehr.example.org", uuid.uuid4().hex)
        started = time.perf_counter()
        assert cache._insert(key, expires)  # the statement, without the thread hop
        samples.append(time.perf_counter() - started)
    return samples


def measure(label: str, url: URL | None, options: str | None = None) -> None:
    if url is None:
        samples, loop_cpu = asyncio.run(awaited(MemoryReplayCache()))
        print(f"{label:<34} awaited {ms(samples)}; loop CPU {loop_cpu * 1000:.3f} ms/check")
        return
    store = AuditStore(url)
    store.migrate()
    cache = DatabaseReplayCache(url, store.migrate)
    if options is not None:  # the same statement with the commit waiting for the WAL flush
        cache.engine.dispose()
        cache.engine = create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            connect_args={"options": f"-c synchronous_commit={options}"},
        )
    direct = inline(cache)
    samples, loop_cpu = asyncio.run(awaited(cache))
    print(f"{label:<34} inline  {ms(direct)}")
    print(f"{'':<34} awaited {ms(samples)}; loop CPU {loop_cpu * 1000:.3f} ms/check")
    cache.close()
    store.close()


print(f"{CHECKS} checks each, fresh jti every time (one row inserted per check)")
measure("memory", None)
with tempfile.TemporaryDirectory() as folder:
    measure(
        "SQLite (audit file, journal PERSIST)",
        URL.create("sqlite", database=str(Path(folder) / "a.db")),
    )
with contextlib.contextmanager(postgres_database)() as postgres:
    measure("PostgreSQL, synchronous_commit=off", postgres)
    measure("PostgreSQL, synchronous_commit=on", postgres, "on")
