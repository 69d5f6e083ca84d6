"""`cds-service serve`'s connection limits, on a real uvicorn on loopback: connections that send
no request head, or send it a byte at a time, are closed; the cap sheds connections over it;
repeating log lines are held back with a count."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Iterator

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
