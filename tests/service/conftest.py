"""Fixtures for the operations tests: a real Postgres server (started once per session)."""

from __future__ import annotations

import pytest

from tests.service.postgres import start_postgres


@pytest.fixture(scope="session")
def postgres():
    server = start_postgres()
    yield server
    server.stop()
