"""The audit databases the storage tests run against: a SQLite file and a PostgreSQL database.

PostgreSQL comes from CDS_TEST_DATABASE_URL (`.ci/run` sets it), else the local default
server; each test session creates its own database there and drops it afterwards, so engineers
sharing the server do not see each other's rows. Unreachable: a skip locally, a failure in CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from cds_service.audit.store import with_driver

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_database() -> Iterator[URL]:
    server = with_driver(os.environ.get("CDS_TEST_DATABASE_URL", DEFAULT_POSTGRES))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"cds_audit_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        message = (
            f"PostgreSQL at {server.render_as_string()} is unreachable ({error.orig}): start "
            "a server there (trust auth, as in CI) or set CDS_TEST_DATABASE_URL to one"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
