"""Hook-call latency with the audit log on SQLite, on PostgreSQL and with the database down.

Run: .venv/bin/python tools/bench_audit.py [calls] [pause seconds between calls]. In process (TestClient), so it measures the
service's own time, not the network. Prints p50 / p95 per backend and how long the writer
needed afterwards to store the backlog.
"""

import contextlib
import logging
import socket
import statistics
import sys
import tempfile
import time

from fastapi.testclient import TestClient

from cds_service.api.app import create_app
from cds_service.core.model import Service
from cds_service.scenarios import build_request, load_scenarios
from cds_service.settings import Settings
from tests.audit_db import postgres_database

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
PAUSE_S = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0  # between calls: an open-loop load
SCENARIOS = load_scenarios()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(label: str, settings: Settings) -> None:
    app = create_app(settings)
    app.state.audit.flush()  # migrations done before timing
    client = TestClient(app)
    requests = []
    for i in range(CALLS):
        request = build_request(
            SCENARIOS[i % len(SCENARIOS)].bundle(), "order-sign", tuple(Service)
        )
        request["prefetch"]["coverage"] = None
        requests.append(request)
    timings = []
    for request in requests:
        started = time.perf_counter()
        assert client.post("/cds-services/dli-hpc-order-sign", json=request).status_code == 200
        timings.append((time.perf_counter() - started) * 1000)
        time.sleep(PAUSE_S)
    started = time.perf_counter()
    app.state.audit.flush(60)
    drain = (time.perf_counter() - started) * 1000
    health = app.state.audit.health()
    app.state.audit.close()
    timings.sort()
    print(
        f"{label:<12} calls={CALLS} pause={PAUSE_S}s p50={statistics.median(timings):.1f}ms "
        f"p95={timings[int(0.95 * len(timings))]:.1f}ms drain_after={drain:.0f}ms "
        f"written={health['written']} spooled={health['spooled']} refused={health['refused']} dropped={health['dropped']}"
    )


logging.disable(logging.ERROR)  # the db-down run logs every lost record
with tempfile.TemporaryDirectory() as folder:
    run("sqlite", Settings(CDS_DATA_DIR=folder))
with contextlib.contextmanager(postgres_database)() as url:  # a scratch database, dropped after
    run("postgresql", Settings(DATABASE_URL=url.render_as_string(hide_password=False)))
run("db-down", Settings(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port()}/test"))
