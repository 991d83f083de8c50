"""Two writers at once: the second fails cleanly (or waits) and succeeds on retry; runs queue."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import dagster as dg
import duckdb

from tests.ingest.conftest import account, event, user, write_day

from .conftest import REPO, fingerprint, run_stage


def _landing(tmp_path):
    landing = tmp_path / "landing"
    write_day(landing, "2025-03-03", accounts=[account("a1")], users=[user("u1", "a1")],
              events=[event(f"m{i}", ts="2025-03-03T09:00:00Z") for i in range(20)])  # fmt: skip
    return landing


def test_second_writer_fails_cleanly_then_retry_succeeds(tmp_path):
    landing = _landing(tmp_path)
    extra = ["--landing", str(landing), "--day", "2025-03-03"]
    ref = tmp_path / "ref.duckdb"
    run_stage("ingest", ref, *extra)
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    holder = duckdb.connect(str(db))  # another process-level writer: a run in progress
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "tests/reliability/crash_runner.py"), "ingest", str(db),
             *extra], capture_output=True, text=True, cwd=REPO, timeout=120,
        )  # fmt: skip
    finally:
        holder.close()
    assert done.returncode != 0 and "lock" in done.stderr.lower()
    run_stage("ingest", db, *extra)  # the retry, once the first writer is gone
    assert fingerprint(db) == fingerprint(ref)


def test_dagster_resource_waits_for_the_other_writer(ea_env, tmp_path):
    from orchestration.defs import analytics
    from orchestration.resources import shared_resources

    db = ea_env["DUCKDB_DATABASE"]
    duckdb.connect(str(db)).close()
    hold = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(3); c.close()", str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert hold.stdout.readline().strip() == "held"
    started = time.monotonic()
    result = dg.materialize([analytics.analytics_views], resources=shared_resources())
    waited = time.monotonic() - started
    hold.wait(timeout=30)
    assert result.success and waited >= 1.0  # it backed off until the lock was free


def test_runs_are_queued_one_at_a_time(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
    instance.dispose()
