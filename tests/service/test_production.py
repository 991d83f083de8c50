"""The production profile end to end: a real Postgres server, `ea serve` supervising the Dagster
webserver, the daemon, the inbox and the MLflow server; a landed day becomes a critical email
through the daemon's landing_day_job on Postgres storage; the daemon is killed while that run is
still going, the supervisor restarts it, and no run is lost or doubled; then backups.

One world for the module, built as a team recovering from raw data would: 20 simulated accounts
over six weeks are loaded into raw.* (the raw steps, recorded on Postgres), `ea backup
rebuild-marts` builds the marts from raw alone, both models are trained on the ml tests'
synthetic grid and registered through the MLflow server (this world is too small for the
training guards). Then one day lands for the daemon.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.service.postgres import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-secret-" + "y" * 40
# Variables the Makefile or a developer's shell may export: the service gets only the file's.
_SCRUB = ("EA_", "SMTP_", "SLACK_", "TEAMS_", "CRM_", "HUBSPOT_", "SALESFORCE_", "WEBHOOK_",
          "MLFLOW_", "DAGSTER_", "DUCKDB_")  # fmt: skip
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def say(message: str) -> None:
    print(f"[production {time.strftime('%H:%M:%S')}] {message}", flush=True)


def land(source: Path, landing: Path) -> None:
    """Land one day's folder as an export does: files first, the manifest last."""
    target = landing / source.name
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir(), key=lambda p: p.name == "_manifest.json"):
        shutil.copy2(path, target / path.name)


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class World:
    """The paths, the environment file and the running `ea serve` of the module's world."""

    def __init__(self, root: Path, postgres, capture):
        self.root = root
        self.data = root / "data"
        self.landing = self.data / "landing"
        self.source = root / "portal_export"
        self.config = root / "config"
        self.mail = capture.directory
        self.logs = self.data / "logs"
        self.state = self.data / "run" / "serve.json"
        self.ports = {k: free_port() for k in ("dagster", "inbox", "mlflow")}
        self.env = {
            "EA_PROFILE": "production",
            "EA_DATA_DIR": str(self.data),
            "EA_LANDING_DIR": str(self.landing),
            "EA_CONFIG_DIR": str(self.config),
            "DUCKDB_DATABASE": str(self.data / "warehouse.duckdb"),
            "EA_ANALYST_DATABASE": str(self.data / "analyst.duckdb"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "EA_DAGSTER_POSTGRES_URL": postgres.create_database("ea_dagster"),
            "EA_MLFLOW_BACKEND_URI": postgres.create_database("ea_mlflow"),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{self.ports['mlflow']}",
            "EA_DAGSTER_LISTEN": f"127.0.0.1:{self.ports['dagster']}",
            "EA_PUBLIC_URL": f"http://127.0.0.1:{self.ports['inbox']}",
            "EA_SECRET_KEY": SECRET,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(capture.port),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DO_NOT_TRACK": "1",
            "GX_ANALYTICS_ENABLED": "false",
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        }
        self.env_file = root / "ea.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        self.serve: subprocess.Popen | None = None

    def start_serve(self) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
        self.serve_out = (self.root / "serve.out").open("w")
        began = time.time()
        self.serve = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "--env-file", str(self.env_file), "serve"],
            cwd=REPO, env=env, stdout=self.serve_out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_for("every service to be ready", lambda: self.read_state().get("all_ready_seconds"),
                 240)  # fmt: skip
        return time.time() - began

    def read_state(self) -> dict:
        assert self.serve is None or self.serve.poll() is None, self.serve_log()
        try:
            return json.loads(self.state.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def serve_log(self) -> str:
        return (self.root / "serve.out").read_text()[-3000:]

    def stop_serve(self) -> tuple[int, float]:
        began = time.time()
        os.kill(self.serve.pid, signal.SIGTERM)
        code = self.serve.wait(timeout=90)
        self.serve_out.close()
        return code, time.time() - began

    def instance(self):
        import dagster as dg

        return dg.DagsterInstance.get()

    def runs(self, job: str = "landing_day_job") -> list:
        from dagster import RunsFilter

        return list(self.instance().get_run_records(filters=RunsFilter(job_name=job)))

    def in_flight(self) -> int:
        return sum(r.dagster_run.status.value in IN_FLIGHT
                   for r in self.instance().get_run_records())  # fmt: skip

    def critical_emails(self, account_name: str) -> list[tuple[float, str]]:
        out = []
        for path in sorted(self.mail.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            subject = str(msg.get("Subject", ""))
            if subject.startswith("Critical:") and account_name in subject:
                out.append((path.stat().st_mtime, subject))
        return out


def _register_champions(world: World) -> None:
    """Both models from the ml tests' synthetic grid, through the MLflow server on Postgres."""
    from ml import registry
    from ml.config import churn_config, expansion_config
    from ml.train import train_model
    from tests.ml.synthetic import feature_grid

    uri = world.env["MLFLOW_TRACKING_URI"]
    grid = feature_grid(horizon_days=56)
    for config in (churn_config(horizon_days=56, num_boost_round=30),
                   expansion_config(horizon_days=56, num_boost_round=30)):  # fmt: skip
        version = registry.log_and_register(
            train_model(grid, config), uri, world.data / "mlflow-artifacts"
        )
        registry.promote(uri, version.registered_name, str(version.version))


def _load_raw(instance, keys: list[str]) -> None:
    """The raw assets of landing_day_job for the history, in one range run (the steps the
    landing sensor's run starts with); daily_after_ingest_sensor leaves a landing_day_job run
    alone, so no daily run follows: the marts come from `ea backup rebuild-marts`.
    """
    from orchestration.definitions import LANDING_DAY_JOB, defs
    from orchestration.defs.ingest import RAW_KEYS, landing_days, partition_range_tags

    instance.add_dynamic_partitions(landing_days.name, keys)
    result = defs.resolve_job_def(LANDING_DAY_JOB).execute_in_process(
        instance=instance,
        tags=partition_range_tags(keys[0], keys[-1]),
        asset_selection=list(RAW_KEYS.values()),
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]


def _partition_days(run) -> set[str]:
    """The landing days a landing_day_job run covered (one partition or a range)."""
    tags = run.dagster_run.tags
    if "dagster/partition" in tags:
        return {tags["dagster/partition"]}
    start = dt.date.fromisoformat(tags["dagster/asset_partition_range_start"])
    end = dt.date.fromisoformat(tags["dagster/asset_partition_range_end"])
    return {(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)}


@pytest.fixture(scope="module")
def production(postgres, tmp_path_factory):
    """Run the whole scenario once; the tests below assert on what it recorded."""
    import dagster as dg

    from bench.latency import add_collapse_rule, pick_target, stage_drop
    from notifications.capture import CaptureServer
    from service.profile import Settings, install_instance_yaml
    from simulator import SimConfig, simulate

    root = tmp_path_factory.mktemp("production")
    capture = CaptureServer(root / "mail").start()
    world = World(root, postgres, capture)
    facts: dict = {"world": world}
    shutil.copytree(REPO / "config", world.config)
    world.landing.mkdir(parents=True)
    simulate(SimConfig(accounts=20, start=dt.date(2025, 2, 1), end=dt.date(2025, 3, 15), seed=3),
             world.source, root / "ground_truth")  # fmt: skip
    days = sorted(p for p in world.source.iterdir() if (p / "_manifest.json").exists())
    history, drop_day = days[:-1], days[-1]
    mp = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith(_SCRUB)]:
        mp.delenv(key)
    for key, value in world.env.items():
        mp.setenv(key, value)
    try:
        # raw.* only, as after losing everything else; the landing sensor never sees these
        # folders (they are loaded from where they were exported).
        install_instance_yaml(Settings.from_env(world.env))
        mp.setenv("EA_LANDING_DIR", str(world.source))
        _load_raw(dg.DagsterInstance.get(), [p.name for p in history])
        mp.setenv("EA_LANDING_DIR", world.env["EA_LANDING_DIR"])
        began = time.time()
        facts["rebuild"] = _ea(world, "backup", "rebuild-marts", "--yes")
        facts["rebuild_seconds"] = time.time() - began
        facts["marts_after_rebuild"] = _warehouse_counts(world.env["DUCKDB_DATABASE"])
        say(f"marts rebuilt from raw in {facts['rebuild_seconds']:.0f}s")

        target = pick_target(Path(world.env["DUCKDB_DATABASE"]))
        facts["target"] = target
        add_collapse_rule(world.config, max(3, int(target["active_users_28d"] * 0.8)))
        staging = root / "staging" / drop_day.name
        stage_drop(drop_day, staging, target["account_id"])

        facts["startup_seconds"] = world.start_serve()
        facts["state_at_start"] = world.read_state()
        say(f"ea serve ready in {facts['startup_seconds']:.1f}s")
        _register_champions(world)
        facts["doctor"] = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "doctor"], cwd=REPO, text=True,
            capture_output=True, timeout=300,
        )  # fmt: skip

        # A day on which the busiest account does nothing: a critical alert and its email.
        land(staging, world.landing)
        t0 = time.time()
        name = target["account_name"]
        arrived = wait_for("the critical email", lambda: world.critical_emails(name), 900, 0.5)
        facts["email_seconds"] = arrived[0][0] - t0
        facts["email_subject"] = arrived[0][1]
        say(f"critical email {facts['email_seconds']:.1f}s after the folder landed")

        # The run goes on (digests, CRM tasks, KPIs) when the daemon process is killed, as the
        # OOM killer would: the process alone, not its code server and run worker.
        (run,) = [r for r in world.runs() if drop_day.name in _partition_days(r)]
        facts["run_status_at_kill"] = run.dagster_run.status.value
        killed = world.read_state()["services"]["daemon"]["pid"]
        os.kill(killed, signal.SIGKILL)
        facts["kill_time"] = time.time()
        facts["killed_pid"] = killed
        say(f"killed the daemon (pid {killed}) during the run")
        facts["daemon_after_kill"] = wait_for(
            "the daemon to be restarted and ready",
            lambda: (d := world.read_state()["services"]["daemon"])["restarts"] == 1
            and d["ready"] and d,
            300,
        )
        wait_for("no run in flight", lambda: world.in_flight() == 0, 900, 2)
        # Two more landing-sensor intervals after the restart: nothing is launched again.
        time.sleep(12)
        facts["runs"] = [r for r in world.runs() if r.create_timestamp.timestamp() >= t0 - 1]
        facts["failures"] = _failures(world.instance(), facts["runs"])
        if facts["failures"]:
            say("run failures:\n" + facts["failures"])
        facts["status_text"] = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "status"], cwd=REPO, text=True,
            capture_output=True, timeout=300,
        ).stdout  # fmt: skip
        if len(facts["runs"]) == 1 and facts["runs"][0].end_time:
            after = facts["runs"][0].end_time - facts["kill_time"]
            say(f"the run finished {after:.1f}s after the kill")
        say("ea status after the run:\n" + facts["status_text"])
        facts["stop"] = world.stop_serve()
        facts["state_at_stop"] = json.loads(world.state.read_text())
        facts["serve_log"] = (root / "serve.out").read_text()
        yield facts
    finally:
        if world.serve is not None and world.serve.poll() is None:
            os.killpg(world.serve.pid, signal.SIGTERM)
            world.serve.wait(timeout=60)
        capture.stop()
        mp.undo()


def test_production_profile_runs_the_instance_on_postgres(production):
    world = production["world"]
    yaml_text = (Path(world.env["DAGSTER_HOME"]) / "dagster.yaml").read_text()
    assert "EA_DAGSTER_POSTGRES_URL" in yaml_text
    storage = type(world.instance().run_storage).__name__
    assert storage == "PostgresRunStorage"
    state = production["state_at_start"]
    assert set(state["services"]) == {"webserver", "daemon", "inbox", "mlflow"}
    assert all(s["ready"] for s in state["services"].values())
    # The models were registered through the MLflow server into its Postgres store.
    import psycopg2

    con = psycopg2.connect(world.env["EA_MLFLOW_BACKEND_URI"].replace("+psycopg2", ""))
    with con.cursor() as cur:
        cur.execute("select name, alias from registered_model_aliases order by name")
        assert cur.fetchall() == [("churn_model", "champion"), ("expansion_model", "champion")]
    con.close()


def test_doctor_passes_on_the_running_production_profile(production):
    done = production["doctor"]
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "ea doctor (production profile)" in out and "all checks passed" in out
    assert out.count("ok    postgres") == 2 and "Dagster instance on postgres" in out
    assert "churn_model: champion is version 1" in out
    assert "off   crm" in out and "off   slack" in out
    assert "test-password" not in out  # Postgres URLs are shown without the password


def test_a_landed_day_becomes_a_critical_email_through_the_daemon(production):
    target = production["target"]
    assert production["email_subject"].startswith("Critical:")
    assert target["account_name"] in production["email_subject"]


def test_a_killed_daemon_is_restarted_and_no_run_is_lost_or_doubled(production):
    after = production["daemon_after_kill"]
    assert after["pid"] != production["killed_pid"] and after["restarts"] == 1
    assert "daemon exited with signal 9" in production["serve_log"]
    # The run in flight when the daemon died finished (its worker is not the daemon's child
    # to lose), and the restarted daemon did not launch the day again.
    assert production["run_status_at_kill"] == "STARTED"
    (run,) = production["runs"]
    assert run.dagster_run.status.value == "SUCCESS", production["failures"]
    world = production["world"]
    assert _partition_days(run) == {p.name for p in world.landing.iterdir()}
    assert len(production["world"].critical_emails(production["target"]["account_name"])) == 1


def test_serve_stops_every_service_and_its_children(production):
    code, seconds = production["stop"]
    assert code == 0
    from service.supervise import group_alive

    state = production["state_at_stop"]
    assert all(s["pid"] is None for s in state["services"].values())
    for name, pid in ((n, s["pid"]) for n, s in production["state_at_start"]["services"].items()):
        assert not group_alive(pid), f"{name}'s process group {pid} is still running"
    assert group_alive(production["killed_pid"]) is False


def _failures(instance, records) -> str:
    """Each failed step or run of these runs with its error, for an assertion message."""
    from dagster import DagsterEventType

    out = []
    for record in records:
        for entry in instance.all_logs(record.dagster_run.run_id):
            event = entry.dagster_event
            if event and event.event_type in (
                DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE
            ):
                step = event.step_key or "run"
                out.append(f"{step}: {entry.message}\n{event.event_specific_data}")
    return "\n".join(out)


def _ea(world: World, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "--env-file", str(world.env_file), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _warehouse_counts(path: str) -> dict[str, int]:
    con = duckdb.connect(path, read_only=True)
    try:
        tables = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_schema in ('raw', 'marts', 'alerts', 'ops')"
        ).fetchall()
        return {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for (t,) in tables}
    finally:
        con.close()


def _wipe(url: str) -> None:
    import psycopg2

    con = psycopg2.connect(url.replace("+psycopg2", ""))
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("drop schema public cascade; create schema public")
    con.close()


def test_status_after_the_runs_shows_each_section(production):
    text = production["status_text"]
    target = production["target"]
    assert "production profile" in text
    assert "landing_day_job" in text and "SUCCESS" in text
    world = production["world"]
    (day,) = [p.name for p in world.landing.iterdir()]
    assert f"last landed day {day}" in text and f"last loaded day {day}" in text
    assert "churn_model: champion v1" in text
    assert f"/runs/{production['runs'][0].dagster_run.run_id}" in text
    assert "marts_job" in text
    assert "daemon     up, 1 restart(s)" in text
    assert target["account_name"] not in text  # a summary, not the alerts themselves


def test_backup_and_restore_bring_back_warehouse_runs_models_and_artifacts(production, tmp_path):
    from ml.registry import load_champion

    world = production["world"]
    mlflow_db = world.env["EA_MLFLOW_BACKEND_URI"]
    done = _ea(world, "backup", "create", "--to", str(tmp_path / "backups"))
    assert done.returncode == 0, done.stderr + done.stdout
    folder = Path(done.stdout.strip().splitlines()[-1])
    for name in ("warehouse.duckdb", "dagster.pgdump", "mlflow.pgdump", "manifest.json",
                 "inbox.sqlite", "mlflow-artifacts", "config"):  # fmt: skip
        assert (folder / name).exists(), name
    assert _ea(world, "backup", "verify", str(folder)).returncode == 0

    runs = sorted(r.dagster_run.run_id for r in world.instance().get_run_records())
    counts = _warehouse_counts(world.env["DUCKDB_DATABASE"])
    assert counts["raw.events"] > 0 and counts["marts.account_health"] > 0
    # Everything lost: the warehouse, the artifact folder, both Postgres databases.
    Path(world.env["DUCKDB_DATABASE"]).unlink()
    shutil.rmtree(world.data / "mlflow-artifacts")
    _wipe(world.env["EA_DAGSTER_POSTGRES_URL"])
    _wipe(mlflow_db)
    assert load_champion(mlflow_db, "churn_model", missing_ok=True) is None

    began = time.time()
    done = _ea(world, "backup", "restore", str(folder), "--yes")
    assert done.returncode == 0, done.stderr + done.stdout
    assert sorted(r.dagster_run.run_id for r in world.instance().get_run_records()) == runs
    assert _warehouse_counts(world.env["DUCKDB_DATABASE"]) == counts
    champion = load_champion(mlflow_db, "churn_model")  # registry and model files are back
    assert champion.version == "1"
    assert Path(world.env["EA_ANALYST_DATABASE"]).stat().st_mtime >= began  # republished

    # A damaged backup is refused, not restored.
    with (folder / "warehouse.duckdb").open("r+b") as fh:
        fh.seek(5000)
        fh.write(b"\x00garbage")
    bad = _ea(world, "backup", "verify", str(folder))
    assert bad.returncode == 1 and "warehouse.duckdb does not match its checksum" in bad.stderr


def test_the_marts_were_rebuilt_from_raw_alone_and_the_pipeline_went_on(production):
    done = production["rebuild"]
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    assert "dropped staging, intermediate, marts; building them from raw.*" in done.stdout
    counts = production["marts_after_rebuild"]
    # Before the rebuild the warehouse held raw.* only (the raw assets write nothing else).
    assert counts["marts.account_health"] > 0 and counts["marts.dim_accounts"] == 20
    world = production["world"]
    con = duckdb.connect(world.env["DUCKDB_DATABASE"], read_only=True)
    try:
        latest = con.execute("select max(as_of_date) from marts.account_health").fetchall()[0][0]
        runs = {r.dagster_run.job_name for r in world.instance().get_run_records()}
    finally:
        con.close()
    # The daily run built the landed day on top of the rebuilt marts.
    (day,) = [p.name for p in world.landing.iterdir()]
    assert latest.isoformat() == day
    assert {"marts_job", "landing_day_job"} <= runs
