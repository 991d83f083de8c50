"""Shared fixtures: an isolated data directory for each test (a private EA_* world)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
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
        # `make test` exports the repository's own analyst path; runs here publish in the world.
        "EA_ANALYST_DATABASE": data / "analyst.duckdb",
        "DAGSTER_HOME": home,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{data / 'mlflow.db'}")
    return env


def _no_defs_state_storage_in_tests() -> None:
    """Tests only: load definitions without Dagster's defs-state storage.

    A `with instance:` block (dg.materialize makes one for an ephemeral instance) leaves that
    instance's defs-state storage in a context variable after the block ends. The next definitions
    load — a second `dg.materialize` in the same test, or a later test — then reads the runs
    database of an instance that is gone or disposed ("undefined DagsterInstance weakref",
    "unable to open database file"). That storage only serves state-backed components, which this
    project does not use, so tests simply go without it; the pipeline itself always runs against
    one live, persistent instance.
    """
    from dagster._core.storage.defs_state.base import DefsStateStorage

    DefsStateStorage.get = classmethod(lambda cls: None)


_no_defs_state_storage_in_tests()


@contextlib.contextmanager
def writer_holding(db):
    """Another process with the warehouse open for writing (a run in progress)."""
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
        "print('ready', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
