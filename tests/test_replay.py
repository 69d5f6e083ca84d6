"""JWT replay protection shared through the audit database: a token's jti is accepted once by
every worker and replica, on SQLite and PostgreSQL; a database that cannot answer refuses the
call (503), never lets it through."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from cds_service import devkeys
from cds_service.api.replay import DatabaseReplayCache, ReplayCheckUnavailable
from cds_service.audit.models import SeenJtiRow
from cds_service.audit.store import AuditStore
from cds_service.audit.writer import StorageUnavailable
from cds_service.policy_store import Knowledge
from cds_service.scenarios import build_request, find_scenario
from tests import test_audit
from tests.audit_db import postgres_database
from tests.clients import BASE_URL, EC_KEY, JKU, JwksServer, auth_client, jwk_set, signed
from tests.outage import switchable
from tests.test_audit import url_text

database, store = test_audit.database, test_audit.store
SIGN = "/cds-services/dli-hpc-order-sign"
BODY = build_request(find_scenario("relapsed-aml-allo-mac").bundle(), "order-sign")


def first_use(cache: DatabaseReplayCache, issuer: str, jti: str, expires: float) -> bool:
    return asyncio.run(cache.first_use(issuer, jti, expires))


def rows(store: AuditStore) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(SeenJtiRow)) or 0


def test_a_jti_is_accepted_once_per_issuer(store: AuditStore) -> None:
    cache = DatabaseReplayCache(store.url, store.migrate)
    expires = time.time() + 300
    assert first_use(cache, "iss", "a", expires)
    assert not first_use(cache, "iss", "a", expires)
    assert first_use(cache, "other-iss", "a", expires)  # jti is unique per issuer
    assert first_use(cache, "iss", "x" * 10_000, expires)  # any length: the key is a digest
    cache.close()
    assert rows(store) == 3


def test_two_workers_racing_with_one_token_let_exactly_one_through(store: AuditStore) -> None:
    workers = [DatabaseReplayCache(store.url, store.migrate) for _ in range(2)]
    expires = time.time() + 300

    async def race() -> list[bool]:
        return await asyncio.gather(
            *(workers[i % 2].first_use("iss", f"jti-{n}", expires) for n in range(20) for i in range(8))
        )  # fmt: skip

    outcomes = asyncio.run(race())
    for worker in workers:
        worker.close()
    assert [sum(outcomes[n * 8 : n * 8 + 8]) for n in range(20)] == [1] * 20


def test_an_expired_jti_is_forgotten_and_purged(store: AuditStore) -> None:
    now = [1_000_000.0]
    cache = DatabaseReplayCache(store.url, store.migrate, clock=lambda: now[0])
    assert first_use(cache, "iss", "a", now[0] + 60)
    assert first_use(cache, "iss", "b", now[0] + 600)
    now[0] += 61  # "a" has expired: a new token may carry the same jti again
    assert first_use(cache, "iss", "a", now[0] + 60)
    assert not first_use(cache, "iss", "b", now[0] + 60)
    now[0] += 1000  # both expired; the purge runs at most once a minute, off the call
    assert first_use(cache, "iss", "c", now[0] + 60)
    deadline = time.monotonic() + 5
    while rows(store) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    cache.close()
    assert rows(store) == 1


def test_a_database_that_cannot_answer_refuses_the_check(store: AuditStore) -> None:
    def not_migrated() -> None:
        raise StorageUnavailable("OperationalError: connection refused")

    cache = DatabaseReplayCache(store.url, not_migrated)
    with pytest.raises(ReplayCheckUnavailable, match="connection refused"):
        first_use(cache, "iss", "a", time.time() + 300)
    cache.close()


@pytest.fixture(scope="module")
def postgres() -> Iterator[URL]:
    yield from postgres_database()


def test_a_database_that_hangs_refuses_the_check_within_the_timeout(postgres: URL) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    url = postgres.set(host="127.0.0.1", port=silent.getsockname()[1])
    cache = DatabaseReplayCache(url, lambda: None)
    started = time.monotonic()
    with pytest.raises(ReplayCheckUnavailable):  # the connect timeout or the wait, whichever first
        first_use(cache, "iss", "a", time.time() + 300)
    assert time.monotonic() - started < 3
    cache.close()
    silent.close()  # the connections it never accepted go with it


# --- through the HTTP API -------------------------------------------------------------------
@pytest.fixture
def jwks() -> JwksServer:
    return JwksServer({JKU: jwk_set(("ec-1", EC_KEY))})


def post(client: TestClient, token: str) -> Any:
    return client.post(SIGN, json=BODY, headers={"Authorization": f"Bearer {token}"})


def test_a_token_replayed_to_another_app_on_the_same_database_is_refused(
    store: AuditStore, knowledge: Knowledge, jwks: JwksServer, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": url_text(store.url), "CDS_DATA_DIR": str(tmp_path)}
    with auth_client(knowledge, jwks, **env) as one, auth_client(knowledge, jwks, **env) as two:
        token = signed()
        assert post(one, token).status_code == 200
        assert post(two, token).status_code == 401
        assert post(one, token).status_code == 401
        assert post(two, signed()).status_code == 200


def test_an_unreachable_database_answers_503_never_200_or_500(
    postgres: URL, knowledge: Knowledge, jwks: JwksServer, tmp_path: Path
) -> None:
    with switchable(postgres.host or "127.0.0.1", postgres.port or 5432) as proxy:
        url = postgres.set(host="127.0.0.1", port=proxy.port)
        env = {"DATABASE_URL": url_text(url), "CDS_DATA_DIR": str(tmp_path)}
        with auth_client(knowledge, jwks, **env) as client:
            assert post(client, signed()).status_code == 200
            proxy.down()
            token = signed()
            refused = post(client, token)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            issue = refused.json()["issue"][0]
            assert issue["code"] == "transient" and "replay" in issue["diagnostics"]
            health_token = signed(aud=BASE_URL + "/healthz")  # checked too: so public part only
            health = client.get("/healthz", headers={"Authorization": f"Bearer {health_token}"})
            assert health.status_code == 200 and health.json() == {"status": "degraded"}
            proxy.restore()
            assert post(client, token).status_code == 200  # never recorded: it was not used
            assert post(client, token).status_code == 401
            health_token = signed(aud=BASE_URL + "/healthz")
            health = client.get("/healthz", headers={"Authorization": f"Bearer {health_token}"})
            assert health.json()["replayCache"] == {"backend": "database", "status": "ok"}


# --- two worker processes behind one port ---------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


def owner_of(connection: HTTPConnection, workers: list[int]) -> int | None:
    """The worker process holding the server end of `connection` (Linux /proc)."""
    assert connection.sock is not None
    client_port = connection.sock.getsockname()[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == client_port:  # remote end is our socket
            inodes.add(fields[9])
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in inodes:
                        return pid
    return None


@contextlib.contextmanager
def two_workers(env: dict[str, str]) -> Iterator[tuple[int, list[int]]]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "cds_service.api.app:create_app",
         "--workers", "2", "--port", str(port), "--log-level", "warning"],
        env=os.environ | env | {"CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(worker_pids(server.pid)) < 2 or not answers(port):
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield port, worker_pids(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def answers(port: int) -> bool:
    connection = HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def one_connection_per_worker(port: int, workers: list[int]) -> dict[int, HTTPConnection]:
    """Open fresh connections until each worker holds one (the kernel picks the acceptor). On a
    loaded machine the second worker may still be starting, so this waits for it (up to a
    minute) rather than giving up after a fixed number of connections."""
    pinned: dict[int, HTTPConnection] = {}
    deadline = time.monotonic() + 60
    tried = 0
    while time.monotonic() < deadline:
        tried += 1
        if tried % 20 == 0:
            time.sleep(0.1)  # let a worker still starting up reach its accept loop
        connection = HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        owner = owner_of(connection, workers)
        if owner is not None and owner not in pinned:
            pinned[owner] = connection
        else:
            connection.close()
        if len(pinned) == 2:
            return pinned
    raise AssertionError(f"{tried} connections in 60 s reached only {sorted(pinned)} of {workers}")


def replays_accepted(port: int, workers: list[int], key: Path, tokens: int) -> int:
    """Each token used on one worker, then replayed to the other: how many replays got a 200."""
    first, second = one_connection_per_worker(port, workers).values()
    url = f"http://127.0.0.1:{port}{SIGN}"
    body = json.dumps(BODY)
    accepted = 0
    for n in range(tokens):
        token = devkeys.sign(key, url)
        statuses = []
        for connection in (first, second) if n % 2 else (second, first):
            connection.request("POST", SIGN, body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        assert statuses[0] == 200, statuses
        accepted += statuses[1] == 200
    first.close()
    second.close()
    return accepted


@pytest.mark.skipif(
    not Path(f"/proc/self/task/{os.getpid()}/children").exists(),
    reason="finds the worker holding a connection in Linux /proc: runs on Linux only",
)
def test_a_token_replayed_to_the_other_worker_is_refused(postgres: URL, tmp_path: Path) -> None:
    key, issuers = devkeys.generate(tmp_path / "client")
    env = {
        "CDS_AUTH": "true",
        "CDS_ISSUERS_FILE": str(issuers),
        "DATABASE_URL": url_text(postgres),
        "CDS_DATA_DIR": str(tmp_path / "data"),
    }
    # Control: with a cache per process, a token replayed to the other worker gets through;
    # so the pinned connections really reach two processes, and the check below can fail.
    with two_workers(env | {"CDS_REPLAY_CACHE": "memory"}) as (port, workers):
        assert replays_accepted(port, workers, key, tokens=4) == 4
    with two_workers(env) as (port, workers):
        assert replays_accepted(port, workers, key, tokens=20) == 0
