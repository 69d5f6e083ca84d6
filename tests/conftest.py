"""Shared fixtures: the real app (fixed clock, deterministic uuids) behind a TestClient."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from cds_service.api.app import create_app
from cds_service.policy_store import Knowledge, load
from cds_service.settings import Settings

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return load()


@pytest.fixture(scope="session")
def client(knowledge: Knowledge) -> TestClient:
    counter = itertools.count(1)
    app = create_app(
        Settings(),
        knowledge,
        clock=lambda: NOW,
        new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
    )
    return TestClient(app)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.fuzz_report import REQUESTS

    if REQUESTS:
        parts = ", ".join(f"{name} {count}" for name, count in REQUESTS.items())
        terminalreporter.write_line(f"fuzz: {REQUESTS.total()} generated requests ({parts})")
