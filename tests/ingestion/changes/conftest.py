"""One PostgreSQL server per test session, started by the tests' own set-up (Debian's binaries)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingestion.testing.postgres import PostgresServer, postgres_bin


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if postgres_bin() is None:
        pytest.fail("PostgreSQL is not installed: `make test` installs it (Debian's postgresql)")
    server = PostgresServer().start()
    yield server
    server.stop()
