"""kill -9 while the audit database is down: is every answered call's audit record kept?

For each run: `cds-service serve` (a real process, PostgreSQL through a loopback proxy) takes
order-sign calls at --rate per second, each with its own hookInstance; after --before seconds the
database hangs (the proxy accepts and forwards nothing) or refuses (connections refused and cut);
--during seconds later the service is killed with SIGKILL mid-load. Then the database comes back,
the service is started again on the same data dir (it replays its spool files), and the tool
counts which answered (200) hookInstances are in the database.

    .venv/bin/python tools/audit_kill.py [--runs 5] [--mode hung refused] [--rate 100]
                                         [--before 2] [--during 4]

Prints per run: answered, stored, lost (answered but not stored), duplicates. Bounded: runs x
(before + during) x rate calls. Needs PostgreSQL at CDS_TEST_DATABASE_URL (as the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from cds_service.bench.workload import order_sign_request
from tests.audit_db import postgres_database
from tests.outage import SwitchableProxy, switchable

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=5)
parser.add_argument("--mode", nargs="+", choices=["hung", "refused"], default=["hung", "refused"])
parser.add_argument("--rate", type=float, default=100)
parser.add_argument("--before", type=float, default=2.0, help="seconds of load before the outage")
parser.add_argument("--during", type=float, default=4.0, help="seconds of outage before kill -9")
args = parser.parse_args()
TEMPLATE = orjson.loads(orjson.dumps(order_sign_request(50)))
SERVE = [str(Path(sys.executable).with_name("cds-service")), "serve"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def service(database: str, data_dir: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database,
        "CDS_DATA_DIR": data_dir,
        "PORT": str(port),
        "CDS_LOG_LEVEL": "warning",
        "CDS_REPLAY_CACHE": "memory",
    }
    process = subprocess.Popen(SERVE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2).json()["audit"]["status"] == "ok":
                break
        time.sleep(0.2)
    try:
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def load(
    base: str, proxy: SwitchableProxy, process: subprocess.Popen[bytes], mode: str
) -> set[str]:
    """Calls on schedule; the outage after --before s; kill -9 after --during s more. The
    hookInstances answered 200."""
    answered: set[str] = set()
    lock = threading.Lock()
    with httpx.Client(base_url=base, timeout=10) as client:

        def call() -> None:
            instance = str(uuid.uuid4())
            body = orjson.dumps(TEMPLATE | {"hookInstance": instance})
            with contextlib.suppress(httpx.HTTPError):
                response = client.post(
                    "/cds-services/dli-hpc-order-sign",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                if response.status_code == 200:
                    with lock:
                        answered.add(instance)

        start, outage = time.monotonic(), False
        with ThreadPoolExecutor(16) as pool:
            for i in range(int(args.rate * (args.before + args.during))):
                time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
                if not outage and time.monotonic() - start >= args.before:
                    proxy.hang() if mode == "hung" else proxy.down()
                    outage = True
                pool.submit(call)
            process.send_signal(signal.SIGKILL)  # mid-load: calls are still in flight
            process.wait()
    return answered


def stored(url: URL) -> tuple[set[str], int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = [r[0] for r in connection.execute(text("SELECT hook_instance FROM audit_decision"))]
    engine.dispose()
    return set(rows), len(rows) - len(set(rows))


def wait_replayed(base: str) -> dict[str, object]:
    deadline = time.monotonic() + 120
    while True:
        audit: dict[str, object] = httpx.get(f"{base}/healthz", timeout=5).json()["audit"]
        if (audit["spooled"] == 0 and audit["status"] == "ok") or time.monotonic() > deadline:
            return audit
        time.sleep(0.5)


def one_run(mode: str) -> tuple[int, int, int, int]:
    with (
        contextlib.contextmanager(postgres_database)() as url,
        switchable(url.host or "127.0.0.1", url.port or 5432) as proxy,
        tempfile.TemporaryDirectory() as data_dir,
    ):
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        with service(via_proxy, data_dir) as (process, base):
            answered = load(base, proxy, process, mode)
        proxy.restore()
        with service(via_proxy, data_dir) as (_, base):
            audit = wait_replayed(base)
        kept, duplicates = stored(url)
    lost = len(answered - kept)
    print(
        f"  {mode:8} answered {len(answered):4}  stored {len(kept):4}  lost {lost}  "
        f"duplicates {duplicates}  (after restart: {audit['status']}, spooled {audit['spooled']})",
        flush=True,
    )
    return len(answered), len(kept), lost, duplicates


def main() -> None:
    print(
        f"{args.rate:g} calls/s; outage after {args.before:g} s; kill -9 {args.during:g} s into it"
    )
    for mode in args.mode:
        results = [one_run(mode) for _ in range(args.runs)]
        lost = sum(r[2] for r in results)
        print(f"{mode}: {args.runs} runs, answered {sum(r[0] for r in results)}, lost {lost}")


main()
