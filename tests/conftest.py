"""Shared fixtures: an isolated data directory for each test (a private EA_* world)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Telemetry off and no writes outside the temp dirs, before anything imports dagster/dbt/GX.
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture()
def ea_env(tmp_path, monkeypatch) -> dict[str, Path]:
    """Point every EA_* variable at a fresh temporary directory (one test's private world)."""
    data = tmp_path / "data"
    landing = data / "landing"
    landing.mkdir(parents=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        "EA_DATA_DIR": data,
        "EA_LANDING_DIR": landing,
        "EA_CONFIG_DIR": REPO / "config",
        "DUCKDB_DATABASE": data / "warehouse.duckdb",
        "DAGSTER_HOME": home,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{data / 'mlflow.db'}")
    return env




def _ignore_dead_defs_state_storage() -> None:
    """Tests only: treat a defs-state storage whose instance is gone as no storage at all.

    A `with instance:` block (dg.materialize makes one for an ephemeral instance) leaves the
    instance's defs-state storage in a context variable after the block ends. Once that instance
    is garbage-collected, the next definitions load (a second `dg.materialize` in the same test,
    or the next test) fails with "undefined DagsterInstance weakref". The pipeline itself always
    runs against a live, persistent instance, so this only affects test processes.
    """
    from dagster._core.storage.defs_state.base import DefsStateStorage

    original = DefsStateStorage.get.__func__

    def get(cls):
        storage = original(cls)
        ref = getattr(storage, "_instance_weakref", None)
        if ref is not None and ref() is None:
            return None
        return storage

    DefsStateStorage.get = classmethod(get)


_ignore_dead_defs_state_storage()
