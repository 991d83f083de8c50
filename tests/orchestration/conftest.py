"""Fixtures for the orchestration tests: a real local SMTP capture server."""

from __future__ import annotations

import pytest

from notifications.capture import CaptureServer


@pytest.fixture()
def capture(tmp_path):
    server = CaptureServer(tmp_path / "mail").start()
    yield server
    server.stop()
