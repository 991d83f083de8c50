"""`ea status`: each section from its own source, the problems worth acting on, links into the
Dagster UI, and never a connection to the warehouse (a run may hold it)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from notifications.outbox import Delivery, enqueue
from notifications.schema import ensure_schema as ensure_ops_schema
from service.profile import Settings
from service.status import collect, render_text
from tests.notifications.sample import load_sample
from warehouse.analytics import publish_analyst_database

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2025, 3, 4)
HOLD = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
    "time.sleep(120)"
)


def _landing_day(landing: Path, day: dt.date, hours_ago: float) -> None:
    folder = landing / day.isoformat()
    folder.mkdir(parents=True)
    manifest = folder / "_manifest.json"
    manifest.write_text(json.dumps({"files": {}}))
    stamp = time.time() - hours_ago * 3600
    os.utime(manifest, (stamp, stamp))


@dg.op
def _fails():
    raise RuntimeError("boom")


@dg.op
def _works():
    return 1


@pytest.fixture()
def world(tmp_path):
    data = tmp_path / "data"
    landing = data / "landing"
    _landing_day(landing, DAY - dt.timedelta(days=1), hours_ago=64)
    _landing_day(landing, DAY, hours_ago=40)
    warehouse = data / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    load_sample(con, DAY)
    ensure_ops_schema(con)
    now = dt.datetime(2025, 3, 4, 7, 0)
    enqueue(con, [
        Delivery(f"k{i}", "email", f"csm{i}@example.com", {"to": [f"csm{i}@example.com"]})
        for i in range(3)
    ], now)  # fmt: skip
    con.execute(
        "update ops.outbox set status = 'dead', attempts = 8, last_error = 'SMTP 550: no such "
        "user' where idempotency_key = 'k0'"
    )
    con.execute("update ops.outbox set status = 'sent' where idempotency_key = 'k1'")
    publish_analyst_database(con, data / "analyst.duckdb", "test")
    con.close()
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        dg.GraphDefinition("g1", node_defs=[_works]).to_job("daily_job").execute_in_process(
            instance=instance
        )
        failed = dg.GraphDefinition("g2", node_defs=[_fails]).to_job("landing_day_job")
        result = failed.execute_in_process(instance=instance, raise_on_error=False)
    # A supervisor (this process) with one service up and one down.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (data / "run").mkdir()
    (data / "run" / "serve.json").write_text(json.dumps({
        "supervisor_pid": os.getpid(), "started_at": "2025-03-04T06:00:00+00:00",
        "services": {
            "webserver": {"pid": sleeper.pid, "ready": True, "restarts": 0},
            "daemon": {"pid": gone.pid, "ready": True, "restarts": 2,
                       "last_exit": "signal 9", "log": str(data / "logs" / "daemon.log")},
        },
    }))  # fmt: skip
    env = {
        "EA_DATA_DIR": str(data),
        "EA_LANDING_DIR": str(landing),
        "DUCKDB_DATABASE": str(warehouse),
        "EA_ANALYST_DATABASE": str(data / "analyst.duckdb"),
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
        "EA_DAGSTER_URL": "https://dagster.example.com",
    }
    yield env, result.run_id
    sleeper.kill()
    sleeper.wait()


def test_each_section_and_what_needs_attention(world):
    env, failed_run = world
    holder = subprocess.Popen([sys.executable, "-c", HOLD, env["DUCKDB_DATABASE"]],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"  # a run holds the warehouse
        status = collect(Settings.from_env(env))
    finally:
        holder.kill()
        holder.wait()
    s = status.sections
    assert not [name for name, sec in s.items() if isinstance(sec, dict) and "error" in sec]

    assert s["landing"]["last_landed_day"] == DAY.isoformat()
    assert 39 < s["landing"]["landed_hours_ago"] < 41
    assert s["landing"]["last_loaded_day"] is None  # nothing was loaded in this instance
    assert len(s["landing"]["landed_not_loaded"]) == 2

    runs = {r["job"]: r for r in s["runs"]["last_run_by_job"]}
    assert runs["daily_job"]["status"] == "SUCCESS"
    assert runs["landing_day_job"]["status"] == "FAILURE"
    assert runs["landing_day_job"]["url"] == f"https://dagster.example.com/runs/{failed_run}"

    alerts = s["alerts"]
    assert alerts["data_day"] == DAY.isoformat() and alerts["open"] > 0
    assert alerts["raised_on_data_day_total"] == sum(alerts["raised_on_data_day"].values())

    assert s["outbox"]["dead_letters"] == 1 and s["outbox"]["backlog"] == 1
    assert s["outbox"]["dead_by_channel"][0]["example_error"].startswith("SMTP 550")

    assert [m["champion"] for m in s["models"]["models"]] == [None, None]
    assert s["disk"]["free_bytes"] > 0 and s["disk"]["sizes"]["warehouse"] > 0
    services = {x["name"]: x for x in s["services"]["services"]}
    assert services["webserver"]["up"] and not services["daemon"]["up"]

    problems = " | ".join(status.problems)
    assert "arrived 40 h ago" in problems
    assert "2 landed day(s) not loaded yet" in problems
    url = f"https://dagster.example.com/runs/{failed_run}"
    assert f"The last landing_day_job run failed: {url}" in problems
    assert "1 dead letter(s)" in problems and "ea outbox requeue-dead" in problems
    assert "churn_model has no champion" in problems
    assert "The daemon service is down" in problems

    text = render_text(status)
    assert f"last landed day {DAY}" in text
    assert "backlog 1" in text and "dead letters 1" in text
    assert "daemon     down, 2 restart(s)" in text


def test_status_before_anything_ran(tmp_path):
    env = {"EA_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "home"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # fmt: skip
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    (tmp_path / "data").mkdir()
    status = collect(Settings.from_env(env))
    text = render_text(status)
    assert "No landing folder has arrived yet." in status.problems
    assert "no runs yet" in text
    assert "the analyst database is not published yet" in text
    assert "`ea serve` has not run for this data folder" in text
    # A new warehouse trains its first champions with the full pipeline (as ea doctor says).
    assert any("churn_model has no champion: run `ea job full_pipeline_job`" in p
               for p in status.problems)  # fmt: skip


def test_ea_status_exits_1_when_something_needs_attention(world, monkeypatch, capsys):
    from service.status import main

    env, _ = world
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["--json"]) == 1
    view = json.loads(capsys.readouterr().out)
    assert view["outbox"]["dead_letters"] == 1 and view["problems"]


def test_the_champion_alias_is_the_registrys():
    from ml.registry import CHAMPION
    from service.status import CHAMPION_ALIAS

    assert CHAMPION_ALIAS == CHAMPION
