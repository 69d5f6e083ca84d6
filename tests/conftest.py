"""Shared fixtures: the real app (fixed clock, deterministic uuids) behind a TestClient."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from cds_service.api.app import create_app
from cds_service.policy_store import Knowledge, load
from cds_service.settings import Settings

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="session", autouse=True)
def _audit_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Apps built with default settings keep their audit log out of the working copy."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CDS_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        env.delenv("DATABASE_URL", raising=False)
        yield


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return load()


@contextmanager
def make_client(knowledge: Knowledge | None = None) -> Iterator[TestClient]:
    """The real app with a fixed clock and counting uuids (also used by tests/golden.py)."""
    counter = itertools.count(1)
    app = create_app(
        Settings(),
        knowledge or load(),
        clock=lambda: NOW,
        new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
    )
    try:
        yield TestClient(app)
    finally:
        app.state.audit.close()


@pytest.fixture(scope="session")
def client(knowledge: Knowledge) -> Iterator[TestClient]:
    with make_client(knowledge) as test_client:
        yield test_client


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.fuzz_report import REQUESTS

    if REQUESTS:
        parts = ", ".join(f"{name} {count}" for name, count in REQUESTS.items())
        terminalreporter.write_line(f"fuzz: {REQUESTS.total()} generated requests ({parts})")
