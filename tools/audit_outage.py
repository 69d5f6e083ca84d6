"""PostgreSQL unreachable for 20 s in the middle of 100 order-sign calls/s for 60 s, against the
service on real HTTP (uvicorn on loopback): prints how many calls were answered 200, how many
audit records ended in the database, and how many twice.

    .venv/bin/python tools/audit_outage.py [--seconds 60] [--outage 20] [--rate 100]

The database is a scratch one on the local test server, cut by a loopback proxy (the server
itself is never stopped); bounded: rate x seconds calls.
"""

import argparse
import contextlib
import logging
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
from sqlalchemy import func, select

from cds_service.api.app import create_app
from cds_service.audit.models import DecisionRow
from cds_service.audit.store import AuditStore
from cds_service.bench.workload import order_sign_request
from cds_service.fixture_server import serve_in_thread
from cds_service.settings import Settings
from tests.audit_db import postgres_database
from tests.outage import switchable

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=60)
parser.add_argument("--outage", type=float, default=20)
parser.add_argument("--rate", type=float, default=100)
args = parser.parse_args()
logging.disable(logging.WARNING)
BODY = orjson.dumps(order_sign_request(50))

with contextlib.contextmanager(postgres_database)() as url, tempfile.TemporaryDirectory() as data:
    with switchable(url.host or "127.0.0.1", url.port or 5432) as proxy:
        via_proxy = url.set(host="127.0.0.1", port=proxy.port)
        app = create_app(
            Settings(
                DATABASE_URL=via_proxy.render_as_string(hide_password=False), CDS_DATA_DIR=data
            )
        )
        app.state.audit.flush()
        ok: list[float] = []
        failed: list[str] = []
        lock = threading.Lock()
        with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as client:

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
                    due = start + i / args.rate
                    time.sleep(max(0.0, due - time.monotonic()))
                    now = time.monotonic()
                    if not down and outage_from <= now < outage_from + args.outage:
                        proxy.down()
                        down = True
                    elif down and now >= outage_from + args.outage:
                        proxy.restore()
                        down = False
                    pool.submit(call)
            proxy.restore()
            during = dict(app.state.audit.health())
            deadline = time.monotonic() + 120
            while app.state.audit.health()["spooled"] and time.monotonic() < deadline:
                app.state.audit.flush()
                time.sleep(0.5)
            health = app.state.audit.health()
            app.state.audit.close()
    reader = AuditStore(url)
    with reader.session() as session:
        rows = session.scalar(select(func.count()).select_from(DecisionRow)) or 0
        distinct = session.scalar(select(func.count(func.distinct(DecisionRow.record_id)))) or 0
    reader.close()

print(
    f"{args.rate:g} calls/s for {args.seconds:g} s, PostgreSQL cut for {args.outage:g} s in the middle"
)
print(
    f"  answered 200: {len(ok)} (p50 {statistics.median(ok):.1f} ms); other: {len(failed)} {sorted(set(failed))}"
)
print(
    f"  spooled at the end of the load: {during['spooled']}; after replay: {health['spooled']}, refused {health['refused']}, dropped {health['dropped']}"
)
print(
    f"  audit rows: {rows}, distinct record ids: {distinct}; equal to the 200s: {rows == len(ok) == distinct}"
)
