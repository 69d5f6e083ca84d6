"""The audit storage fails for 20 s in the middle of 100 order-sign calls/s for 60 s, against the
service on real HTTP (uvicorn on loopback): prints how many calls were answered 200, how many
audit records ended in the database, and how many twice.

    .venv/bin/python tools/audit_outage.py [--backend postgres|sqlite-full-disk]
                                           [--seconds 60] [--outage 20] [--rate 100]

`postgres` (default): PostgreSQL made unreachable. The database is a scratch one on the local
test server, cut by a loopback proxy (the server itself is never stopped).

`sqlite-full-disk`: the embedded SQLite database on a full disk. The data dir (database and
spool alike, as in a default install) is a small tmpfs mounted for the run (needs root and
`mount`); the outage is a filler file written until the filesystem answers ENOSPC, and its end
is deleting the filler. Bounded: rate x seconds calls, one tmpfs of --disk-mb.
"""

import argparse
import contextlib
import logging
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from cds_service.api.app import create_app
from cds_service.audit.models import DecisionRow
from cds_service.audit.store import AuditStore, database_url
from cds_service.bench.workload import order_sign_request
from cds_service.fixture_server import serve_in_thread
from cds_service.settings import Settings
from tests.audit_db import postgres_database
from tests.outage import switchable

parser = argparse.ArgumentParser()
parser.add_argument("--backend", choices=["postgres", "sqlite-full-disk"], default="postgres")
parser.add_argument("--seconds", type=float, default=60)
parser.add_argument("--outage", type=float, default=20)
parser.add_argument("--rate", type=float, default=100)
parser.add_argument("--disk-mb", type=int, default=128, help="size of the sqlite-full-disk tmpfs")
args = parser.parse_args()
logging.disable(logging.WARNING)
BODY = orjson.dumps(order_sign_request(50))


@dataclass
class Outage:
    settings: Settings
    stored_in: URL  # where to count the rows afterwards
    down: Callable[[], None]
    restore: Callable[[], None]
    what: str


@contextlib.contextmanager
def postgres_unreachable(data: str) -> Iterator[Outage]:
    with (
        contextlib.contextmanager(postgres_database)() as url,
        switchable(url.host or "127.0.0.1", url.port or 5432) as proxy,
    ):
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        settings = Settings(DATABASE_URL=via_proxy, CDS_DATA_DIR=data)
        yield Outage(settings, url, proxy.down, proxy.restore, "PostgreSQL cut")


@contextlib.contextmanager
def sqlite_full_disk(_: str) -> Iterator[Outage]:
    with tempfile.TemporaryDirectory() as mount_point:
        mounted = subprocess.run(  # noqa: S603 - fixed arguments, our own temporary folder
            ["/usr/bin/mount", "-t", "tmpfs", "-o", f"size={args.disk_mb}m", "tmpfs", mount_point],
            capture_output=True,
            text=True,
        )
        if mounted.returncode != 0:
            raise SystemExit(f"sqlite-full-disk needs root and mount: {mounted.stderr.strip()}")
        data = Path(mount_point)
        filler = data / "filler"
        try:
            yield Outage(
                Settings(CDS_DATA_DIR=mount_point),
                database_url(data, None),
                lambda: fill(filler),
                lambda: filler.unlink(missing_ok=True),
                f"the SQLite data dir's filesystem ({args.disk_mb} MB tmpfs) full",
            )
        finally:
            subprocess.run(["/usr/bin/umount", mount_point], check=True)  # noqa: S603


def fill(filler: Path) -> None:
    """Write until the filesystem refuses even a small block: the disk is full."""
    with open(filler, "ab", buffering=0) as handle:
        for block in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * block)


def load(base: str, outage: Outage) -> tuple[list[float], list[str]]:
    """rate x seconds calls on schedule; the outage in the middle. Latencies of the 200s (ms)
    and the outcome of every other call."""
    ok: list[float] = []
    failed: list[str] = []
    lock = threading.Lock()
    with httpx.Client(base_url=base, timeout=10) as client:

        def call() -> None:
            started = time.perf_counter()
            try:
                response = client.post(
                    "/cds-services/dli-hpc-order-sign",
                    content=BODY,
                    headers={"content-type": "application/json"},
                )
                outcome = str(response.status_code)
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            with lock:
                if outcome == "200":
                    ok.append((time.perf_counter() - started) * 1000)
                else:
                    failed.append(outcome)

        start = time.monotonic()
        outage_from = start + (args.seconds - args.outage) / 2
        down = False
        with ThreadPoolExecutor(16) as pool:
            for i in range(int(args.rate * args.seconds)):
                time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
                now = time.monotonic()
                if not down and outage_from <= now < outage_from + args.outage:
                    outage.down()
                    down = True
                elif down and now >= outage_from + args.outage:
                    outage.restore()
                    down = False
                pool.submit(call)
        outage.restore()
    return ok, failed


def stored(url: URL) -> tuple[int, int]:
    reader = AuditStore(url)
    with reader.session() as session:
        rows = session.scalar(select(func.count()).select_from(DecisionRow)) or 0
        distinct = session.scalar(select(func.count(func.distinct(DecisionRow.record_id)))) or 0
    reader.close()
    return rows, distinct


def run() -> None:
    how = postgres_unreachable if args.backend == "postgres" else sqlite_full_disk
    with tempfile.TemporaryDirectory() as data, how(data) as outage:
        app = create_app(outage.settings)
        app.state.audit.flush()
        during: dict[str, int] = {}
        restore = outage.restore

        def restore_after_looking() -> None:  # how much waits at the outage's end
            during.update(during or app.state.audit.health())
            restore()

        outage.restore = restore_after_looking
        with serve_in_thread(app) as base:
            ok, failed = load(base, outage)
        deadline = time.monotonic() + 120
        while app.state.audit.health()["spooled"] and time.monotonic() < deadline:
            app.state.audit.flush()
            time.sleep(0.5)
        health = app.state.audit.health()
        app.state.audit.close()
        rows, distinct = stored(outage.stored_in)
    print(f"{args.rate:g} calls/s for {args.seconds:g} s, {outage.what} for {args.outage:g} s in the middle")  # fmt: skip
    print(f"  answered 200: {len(ok)} (p50 {statistics.median(ok):.1f} ms); other: {len(failed)} {sorted(set(failed))}")  # fmt: skip
    print(f"  when the outage ended: spooled {during['spooled']} (in memory {during['heldInMemory']}), status {during['status']!r}; after replay: spooled {health['spooled']}, refused {health['refused']}, dropped {health['dropped']}")  # fmt: skip
    print(f"  audit rows: {rows}, distinct record ids: {distinct}, duplicates: {rows - distinct}; equal to the 200s: {rows == len(ok) == distinct}")  # fmt: skip


run()
