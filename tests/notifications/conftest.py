"""Fixtures for the deliveries tests: a warehouse with the sample world, a real SMTP capture."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from notifications.capture import CaptureServer
from notifications.content import ContentConfig
from notifications.mail import SmtpConfig, SmtpSender
from tests.notifications.sample import ROUTING, load_sample

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "config" / "templates" / "email"
DAY = dt.date(2025, 3, 4)
NOW = dt.datetime(2025, 3, 4, 7, 0)


@pytest.fixture()
def db_path(tmp_path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    load_sample(con, DAY)
    con.close()
    return path


@pytest.fixture()
def con(db_path):
    connection = duckdb.connect(str(db_path))
    yield connection
    connection.close()


@pytest.fixture()
def content() -> ContentConfig:
    return ContentConfig(routing=ROUTING)


@pytest.fixture()
def capture(tmp_path):
    server = CaptureServer(tmp_path / "mail").start()
    yield server
    server.stop()


@pytest.fixture()
def smtp(capture) -> SmtpSender:
    return SmtpSender(SmtpConfig(host="127.0.0.1", port=capture.port, timeout_seconds=5))
