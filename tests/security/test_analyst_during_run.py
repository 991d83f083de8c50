"""An analyst stays connected through a whole landing_day_job: neither waits for the other."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

# An analyst's notebook: queries in a loop through the documented path until told to stop,
# then refreshes. Prints "<ok> <failed> <latest day seen>" and then the day seen after refresh.
ANALYST = """
import sys, threading
from warehouse.analyst import connect
session = connect()
sql = "select max(as_of_date) from analytics.account_health"
print(session.query(sql)[1][0][0], flush=True)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
ok = failed = 0
seen = set()
while not stop.wait(0.2):
    try:
        seen.add(str(session.query(sql)[1][0][0]))
        ok += 1
    except Exception as exc:
        failed += 1
        print("error:", exc, file=sys.stderr)
print(ok, failed, ",".join(sorted(seen)), flush=True)
sys.stdin.readline()
session.refresh()
print(session.query(sql)[1][0][0], flush=True)
"""


def _register_champions(ea_env) -> None:
    """Both models, trained on the synthetic grid the ml tests use (this world is too small
    for the training guards), registered and promoted as the training job would."""
    from ml import registry
    from ml.config import churn_config, expansion_config
    from ml.train import train_model
    from tests.ml.synthetic import feature_grid

    uri = os.environ["MLFLOW_TRACKING_URI"]
    grid = feature_grid(horizon_days=56)
    for config in (churn_config(horizon_days=56, num_boost_round=30),
                   expansion_config(horizon_days=56, num_boost_round=30)):  # fmt: skip
        version = registry.log_and_register(
            train_model(grid, config), uri, ea_env["EA_DATA_DIR"] / "mlflow-artifacts"
        )
        registry.promote(uri, version.registered_name, str(version.version))


def test_an_analyst_session_stays_open_through_a_whole_landing_day_job(
    ea_env, tmp_path, monkeypatch
):
    from notifications.capture import CaptureServer
    from orchestration.definitions import LANDING_DAY_JOB, defs
    from orchestration.demo import Demo
    from simulator import SimConfig, simulate

    landing = ea_env["EA_LANDING_DIR"]
    simulate(
        SimConfig(accounts=20, start=dt.date(2025, 2, 1), end=dt.date(2025, 3, 15), seed=3),
        landing,
        ea_env["EA_DATA_DIR"] / "ground_truth",
    )
    days = sorted(dt.date.fromisoformat(p.name) for p in landing.iterdir())
    last = days[-1]
    shutil.move(landing / last.isoformat(), tmp_path / last.isoformat())
    _register_champions(ea_env)
    capture = CaptureServer(tmp_path / "mail").start()
    monkeypatch.setenv("SMTP_PORT", str(capture.port))
    analyst_db = ea_env["EA_DATA_DIR"] / "analyst.duckdb"
    monkeypatch.setenv("EA_ANALYST_DATABASE", str(analyst_db))
    try:
        demo = Demo(defs, dg.DagsterInstance.get())
        demo.ingest(days[:-1])
        demo.run("daily_job")  # ends by publishing the analyst database
        assert analyst_db.is_file()

        reader = subprocess.Popen(
            [sys.executable, "-c", ANALYST], cwd=REPO, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        try:
            before = reader.stdout.readline().strip()
            assert before == days[-2].isoformat()
            # The day lands and runs whole while the analyst keeps querying.
            shutil.move(tmp_path / last.isoformat(), landing / last.isoformat())
            demo._register([last.isoformat()])
            result = defs.resolve_job_def(LANDING_DAY_JOB).execute_in_process(
                instance=demo.instance, partition_key=last.isoformat(), raise_on_error=False
            )
            reader.stdin.write("stop\n")
            reader.stdin.flush()
            ok, failed, seen = reader.stdout.readline().split()
            reader.stdin.write("refresh\n")
            reader.stdin.flush()
            after = reader.stdout.readline().strip()
        finally:
            reader.stdin.close()
            reader.wait(timeout=60)
        assert result.success, [e.message for e in result.all_events if e.is_step_failure]
        assert "analytics__analyst_db" in {e.step_key for e in result.all_events if e.step_key}
        # Every query during the run worked and saw the snapshot it opened, whole.
        assert int(ok) > 10 and int(failed) == 0, reader.stderr.read()
        assert seen == before
        assert after == last.isoformat()  # the documented refresh shows the new day
    finally:
        capture.stop()
