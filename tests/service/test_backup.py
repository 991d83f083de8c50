"""`ea backup` on embedded defaults: the sqlite Dagster instance, the sqlite MLflow store, the
model files, the warehouse and the inbox's recorded actions come back after they are lost; a
damaged backup, a running `ea serve` and the other profile's backup are refused.
(The production profile, with pg_dump and pg_restore: tests/service/test_production.py.)"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from service import backup
from tests.notifications.sample import load_sample

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2025, 3, 4)


@dg.op
def _works() -> None:
    pass


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """An MLflow sqlite store with one experiment, made once (its migrations take seconds)."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return db, MlflowClient(f"sqlite:///{db}").create_experiment("kept")


@pytest.fixture
def world(tmp_path, monkeypatch, mlflow_store):
    data = tmp_path / "data"
    data.mkdir()
    warehouse = data / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    load_sample(con, DAY)
    con.execute(
        "create table raw.events as select 'e' || i as message_id, 'acc_1' as account_id, "
        "date '2025-03-01' + (i % 4)::integer as landing_date from range(50) t(i)"
    )
    con.close()
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.GraphDefinition("g", node_defs=[_works]).to_job("daily_job").execute_in_process(
            instance=instance
        )
    mlflow_db = data / "mlflow.db"
    shutil.copy2(mlflow_store[0], mlflow_db)
    experiment = mlflow_store[1]
    (data / "mlflow-artifacts" / "1" / "model").mkdir(parents=True)
    (data / "mlflow-artifacts" / "1" / "model" / "model.txt").write_text("booster bytes")
    inbox = sqlite3.connect(data / "inbox.sqlite")
    inbox.execute("create table actions (alert_id text, action text)")
    inbox.execute("insert into actions values ('a1', 'ack'), ('a2', 'snooze')")
    inbox.commit()
    inbox.close()
    env = {
        "EA_DATA_DIR": str(data),
        "EA_LANDING_DIR": str(data / "landing"),
        "EA_CONFIG_DIR": str(REPO / "config"),
        "DUCKDB_DATABASE": str(warehouse),
        "EA_ANALYST_DATABASE": str(data / "analyst.duckdb"),
        "EA_APP_SNAPSHOT": str(data / "app_snapshot.duckdb"),
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_db}",
    }
    for key in [k for k in os.environ if k.startswith(("EA_", "MLFLOW_", "DUCKDB_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {"env": env, "data": data, "home": home, "run_id": result.run_id,
            "experiment": experiment}  # fmt: skip


def _events(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select count(*) from raw.events").fetchall()[0][0]
    finally:
        con.close()


def test_embedded_backup_and_restore_bring_everything_back(world, tmp_path, capsys):
    data, home = world["data"], world["home"]
    assert backup.main(["create", "--to", str(tmp_path / "backups")]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert folder.name.startswith("ea-backup-")
    for name in ("warehouse.duckdb", "dagster_home", "mlflow.db", "mlflow-artifacts",
                 "inbox.sqlite", "config", "manifest.json"):  # fmt: skip
        assert (folder / name).exists(), name
    assert backup.main(["verify", str(folder)]) == 0
    assert "ok:" in capsys.readouterr().out

    # Everything lost.
    (data / "warehouse.duckdb").unlink()
    (data / "mlflow.db").unlink()
    (data / "inbox.sqlite").unlink()
    shutil.rmtree(data / "mlflow-artifacts")
    for path in home.iterdir():
        if path.name != "dagster.yaml":
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    with pytest.raises(SystemExit):  # replacing data needs --yes
        backup.main(["restore", str(folder)])
    assert backup.main(["restore", str(folder), "--yes"]) == 0

    assert _events(data / "warehouse.duckdb") == 50
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert [r.dagster_run.run_id for r in instance.get_run_records()] == [world["run_id"]]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{data / 'mlflow.db'}")
    assert client.get_experiment(world["experiment"]).name == "kept"
    assert (data / "mlflow-artifacts/1/model/model.txt").read_text() == "booster bytes"
    inbox = sqlite3.connect(data / "inbox.sqlite")
    assert inbox.execute("select count(*) from actions").fetchall() == [(2,)]
    inbox.close()
    assert (data / "analyst.duckdb").exists()  # published again from the restored warehouse


def test_restore_refuses_a_damaged_backup_a_running_serve_and_the_other_profile(
    world, tmp_path, capsys, monkeypatch
):
    data = world["data"]
    assert backup.main(["create", "--to", str(tmp_path / "backups")]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])

    # `ea serve` holds its lock: restore would pull state from under the services.
    (data / "run").mkdir()
    lock = (data / "run" / "serve.lock").open("w")
    lock.write(str(os.getpid()))
    lock.flush()
    fcntl.flock(lock, fcntl.LOCK_EX)
    with pytest.raises(SystemExit, match=r"`ea serve` is running \(pid \d+\); stop it first"):
        backup.main(["restore", str(folder), "--yes"])
    lock.close()

    # The other profile's backup.
    monkeypatch.setenv("EA_PROFILE", "production")
    with pytest.raises(SystemExit, match="backup is of the embedded profile"):
        backup.main(["restore", str(folder), "--yes"])
    monkeypatch.delenv("EA_PROFILE")

    # A damaged file: refused before anything is replaced.
    before = _events(data / "warehouse.duckdb")
    with (folder / "mlflow.db").open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00damage")
    with pytest.raises(SystemExit, match="mlflow.db does not match its checksum"):
        backup.main(["restore", str(folder), "--yes"])
    assert _events(data / "warehouse.duckdb") == before
    assert not list(data.glob("*.before-restore-*"))
