"""`cds-service serve`'s connection limits, on a real uvicorn on loopback: connections that send
no request head, or send it a byte at a time, are closed; a head over the limit is refused
however it arrives; the cap sheds connections over it; repeating log lines are held back with a
count; `serve --workers N` keeps every limit, the JSON log, and a spool file per worker."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from cds_service.api.app import create_app
from cds_service.policy_store import Knowledge
from cds_service.server import RepeatFilter, uvicorn_options
from cds_service.settings import Settings


@pytest.fixture(scope="module")
def server_port(knowledge: Knowledge) -> Iterator[int]:
    settings = Settings(CDS_HEADER_TIMEOUT=0.5, CDS_KEEPALIVE_TIMEOUT=1, CDS_MAX_CONNECTIONS=20)
    app = create_app(settings, knowledge)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield int(server.servers[0].sockets[0].getsockname()[1])
    server.should_exit = True
    thread.join(10)
    app.state.audit.close()


def closed_by_server(sock: socket.socket, wait: float = 10.0) -> bool:
    """True once the server closes the connection (bounded wait; not a timing assertion)."""
    sock.settimeout(wait)
    try:
        while sock.recv(1024):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_a_connection_that_never_sends_a_request_is_closed(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port)) as idle:
        assert closed_by_server(idle)


def test_a_request_head_sent_a_byte_at_a_time_is_closed(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port)) as slow:
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                slow.send(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
        assert closed or closed_by_server(slow)


def test_a_request_head_over_the_limit_in_one_write_is_refused(server_port: int) -> None:
    """Issue 24: a 120 kB head sent in one write passed h11's incomplete-event limit."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 120_000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server_port)) as client:
        client.sendall(head)
        client.settimeout(10)
        answer = client.recv(65536)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
        assert b"OperationOutcome" in answer and b"CDS_MAX_HEADER_BYTES" in answer
        assert closed_by_server(client)


def test_a_head_under_the_limit_in_one_write_is_answered(server_port: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8_000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server_port)) as client:
        client.sendall(head)
        client.settimeout(10)
        assert client.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_405_names_the_allowed_methods(server_port: int) -> None:
    client = http.client.HTTPConnection("127.0.0.1", server_port, timeout=10)
    client.request("DELETE", "/cds-services")
    response = client.getresponse()
    assert response.status == 405
    assert response.getheader("Allow") == "GET"
    assert json.loads(response.read())["resourceType"] == "OperationOutcome"
    client.close()


def test_a_kept_alive_connection_serves_requests_then_closes_when_idle(server_port: int) -> None:
    client = http.client.HTTPConnection("127.0.0.1", server_port, timeout=10)
    for _ in range(2):
        client.request("GET", "/healthz")
        response = client.getresponse()
        assert response.status == 200 and response.read()
    assert client.sock is not None and closed_by_server(client.sock)
    client.close()


def test_connections_over_the_cap_are_shed_and_the_service_keeps_answering(
    server_port: int,
) -> None:
    held = [socket.create_connection(("127.0.0.1", server_port)) for _ in range(20)]
    try:
        extra = socket.create_connection(("127.0.0.1", server_port))
        assert closed_by_server(extra, wait=2.0)
        extra.close()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)  # the server sees the closes
    with socket.create_connection(("127.0.0.1", server_port)) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"200 OK" in client.recv(65536)


def test_repeating_log_lines_are_held_back_with_a_count() -> None:
    repeat = RepeatFilter(interval=3600)
    records = [
        logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "accept failed", None, None)
        for _ in range(1000)
    ]
    passed = [r for r in records if repeat.filter(r)]
    assert len(passed) == 1
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "other", None, None)
    assert repeat.filter(other)
    repeat.interval = 0
    late = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "accept failed", None, None)
    assert repeat.filter(late) and "999 more like this" in late.getMessage()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_with_workers_keeps_every_limit_and_a_spool_file_each(tmp_path: Path) -> None:
    """Issue 24: `uvicorn --workers 2` (the README's old command) ran without the header deadline,
    the connection cap and the JSON log; workers on one data dir shared one spool file."""
    port = free_port()
    env = os.environ | {
        "PORT": str(port),
        "CDS_DATA_DIR": str(tmp_path),
        "CDS_HEADER_TIMEOUT": "0.5",
        "CDS_MAX_CONNECTIONS": "40",
        "CDS_REPLAY_CACHE": "memory",
    }
    serve = [str(Path(sys.executable).with_name("cds-service")), "serve", "--workers", "2"]
    process = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while len(list(tmp_path.glob("audit-spool-*.sqlite3"))) < 2:
            assert time.monotonic() < deadline and process.poll() is None, "workers did not start"
            time.sleep(0.2)
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port)) as client:
                    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b"200 OK" in client.recv(65536):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        names = sorted(p.name for p in tmp_path.glob("audit-spool-*.sqlite3"))
        assert len(names) == 2 and names[0] != names[1]  # one per worker
        with socket.create_connection(("127.0.0.1", port)) as idle:  # the header deadline
            assert closed_by_server(idle, wait=10)
        with socket.create_connection(("127.0.0.1", port)) as client:  # the head limit
            client.sendall(b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 120_000 + b"\r\n\r\n")
            client.settimeout(10)
            assert client.recv(65536).startswith(b"HTTP/1.1 431")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)  # every line JSON
