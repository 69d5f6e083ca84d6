"""1,000 idle and 300 slow-header connections against a real `cds-service serve` on loopback,
while normal order-sign calls run at 10/s: prints how soon the server closed them, the normal
calls' p50 / p99 and failures, and the service's log volume.

    .venv/bin/python tools/hostile_connections.py [--seconds 30]

Loopback only; bounded: 1,300 connections, one normal call per 0.1 s for --seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

from cds_service.bench.workload import order_sign_request

IDLE, SLOW = 1000, 300
HEADER_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_service(port: int, data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "CDS_ENV": "development", "CDS_DATA_DIR": str(data), "PORT": str(port),
        "CDS_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "CDS_MAX_CONNECTIONS": "2000",
    }  # fmt: skip
    binary = Path(sys.executable).parent / "cds-service"
    process = subprocess.Popen(  # noqa: S603 - our own entry point, fixed arguments
        [str(binary), "serve"], env=env, stderr=log.open("wb"), stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the service did not start")


def hold(port: int, slow: bool, closed_after: list[float]) -> None:
    """One connection: silent, or a request head one byte per second; records when the
    server closed it."""
    started = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    except OSError:
        closed_after.append(-1.0)  # refused outright
        return
    head = b"POST /cds-services/dli-hpc-order-sign HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
    with sock:
        sock.settimeout(1.0)
        for byte in head if slow else iter(int, 1):
            try:
                if slow:
                    sock.send(bytes([byte]))
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
            if time.monotonic() - started > 60:
                break
    closed_after.append(time.monotonic() - started)


def normal_calls(port: int, seconds: float, latencies: list[float], failures: list[str]) -> None:
    body = orjson.dumps(order_sign_request(50))
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                response = client.post(
                    "/cds-services/dli-hpc-order-sign", content=body, headers=headers
                )
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures.append(str(response.status_code))
            except httpx.HTTPError as error:
                failures.append(type(error).__name__)
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    seconds = parser.parse_args().seconds
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # the child inherits it
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "service.log"
        service = start_service(port, Path(scratch), log)
        try:
            closed: list[float] = []
            holders = [threading.Thread(target=hold, args=(port, i >= IDLE, closed), daemon=True)
                       for i in range(IDLE + SLOW)]  # fmt: skip
            latencies: list[float] = []
            failures: list[str] = []
            normal = threading.Thread(
                target=normal_calls, args=(port, seconds, latencies, failures)
            )
            normal.start()
            for thread in holders:
                thread.start()
            normal.join()
            for thread in holders:
                thread.join(timeout=1)
        finally:
            service.terminate()
            service.wait(10)
        log_bytes = log.stat().st_size
        lines = log.read_bytes().splitlines()
        log_lines = len(lines)
        kinds = Counter(
            orjson.loads(line).get("msg", "?") if line.startswith(b"{") else line[:60].decode()
            for line in lines
        )
    still_open = IDLE + SLOW - len(closed)
    finished = sorted(c for c in closed if c >= 0)
    print(
        f"hostile connections: {IDLE} idle + {SLOW} slow-header; header timeout {HEADER_TIMEOUT:g} s"
    )
    if finished:
        print(
            f"  closed by the server: {len(finished)}, after p50 {statistics.median(finished):.1f} s, max {finished[-1]:.1f} s; still open at the end: {still_open}; refused: {closed.count(-1.0)}"
        )
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    print(
        f"normal order-sign at 10/s for {seconds:g} s: {len(latencies)} ok, {len(failures)} failed {sorted(set(failures))}"
    )
    print(f"  p50 {statistics.median(latencies):.1f} ms, p99 {cuts[98]:.1f} ms")
    print(f"service log: {log_lines} lines, {log_bytes} bytes; most common: {kinds.most_common(3)}")


if __name__ == "__main__":
    main()
