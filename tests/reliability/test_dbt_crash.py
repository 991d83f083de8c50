"""Fault injection for the dbt build: SIGKILL it between models, re-run, compare every model."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ingest.loader import load_landing_days

from .conftest import REPO, fingerprint, fresh_copy

pytestmark = pytest.mark.slow
PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")
# The marts stage's own folders, as its Dagster asset selects them (other stages add their own).
SELECT = ["path:seeds", "path:models/staging", "path:models/intermediate", "path:models/marts"]


def _dbt(db: Path, target: Path, vars_: dict, window: tuple[dt.date, dt.date],
         kill_after_models: int | None = None) -> int:  # fmt: skip
    """Full-refresh `dbt build`; optionally SIGKILL the process group after N models finished."""
    env = {**os.environ, "DUCKDB_DATABASE": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    cmd = [str(DBT), "build", "--full-refresh", "--project-dir", str(PROJECT),
           "--profiles-dir", str(PROJECT), "--target-path", str(target), "--log-path",
           str(target / "logs"), "--vars", json.dumps(vars_),
           "--event-time-start", window[0].isoformat(),
           "--event-time-end", (window[1] + dt.timedelta(days=1)).isoformat(),
           "--select", *SELECT]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    done = 0
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if " OK created " in line or " OK " in line and " model " in line:
            done += 1
            if kill_after_models is not None and done >= kill_after_models:
                os.killpg(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=600)
    if kill_after_models is None:
        tail = "".join(lines[-30:])
        assert proc.returncode == 0, f"dbt build failed (exit {proc.returncode}):\n{tail}"
    return done


def test_dbt_build_killed_between_models(tmp_path):
    from simulator import SimConfig, simulate

    landing = tmp_path / "landing"
    start, end = dt.date(2025, 1, 6), dt.date(2025, 3, 16)
    simulate(SimConfig(accounts=15, start=start, end=end, seed=5), landing, tmp_path / "truth")
    base = tmp_path / "base.duckdb"
    con = duckdb.connect(str(base))
    load_landing_days(con, landing)
    con.close()
    # As the marts asset runs it on a first build: monthly microbatches over the landed history.
    vars_ = {"as_of_date": end.isoformat(), "history_start": start.isoformat(),
             "microbatch_size": "month"}  # fmt: skip
    ref = fresh_copy(base, tmp_path / "ref" / "w.duckdb")
    total = _dbt(ref, tmp_path / "target-ref", vars_, (start, end))
    expected = fingerprint(ref)
    assert total > 5
    for k in (2, total // 2):
        db = fresh_copy(base, tmp_path / f"k{k}" / "w.duckdb")
        _dbt(db, tmp_path / f"target-k{k}", vars_, (start, end), kill_after_models=k)
        _dbt(db, tmp_path / f"target-k{k}", vars_, (start, end))
        got = fingerprint(db)
        diff = sorted(t for t in expected.keys() | got.keys() if got.get(t) != expected.get(t))
        assert not diff, f"dbt killed after {k}/{total} models: tables differ: {diff}"
