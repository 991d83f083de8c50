"""The path from a landed folder to a critical email: one run, the email right after alerts."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster_duckdb import DuckDBResource

from orchestration.resources import PathsResource
from tests.notifications.sample import load_sample

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2025, 3, 4)


def _plan(job_name: str) -> list[str]:
    from dagster._core.execution.api import create_execution_plan

    from orchestration.definitions import defs

    plan = create_execution_plan(defs.resolve_job_def(job_name))
    return [s.key for s in plan.get_steps_to_execute_in_topo_order()]


def test_the_landing_sensor_launches_one_run_that_ingests_and_alerts(ea_env):
    from orchestration.definitions import LANDING_DAY_JOB, defs
    from orchestration.defs.ingest import landing_days

    sensor = defs.resolve_sensor_def("landing_sensor")
    assert sensor.job_name == LANDING_DAY_JOB
    assert sensor.minimum_interval_seconds <= 5
    assert defs.resolve_schedule_def("ingest_daily").job_name == LANDING_DAY_JOB
    assert defs.resolve_job_def(LANDING_DAY_JOB).partitions_def == landing_days
    steps = _plan(LANDING_DAY_JOB)
    # Applying people's inbox actions has no upstream (it only has to precede the alerts).
    assert [s for s in steps if s != "alerts__inbox_actions"][0] == "raw_landing"
    assert steps.index("alerts__inbox_actions") < steps.index("alerts__alerts")
    critical = steps.index("ops__critical_alerts")
    # The critical email goes out right after the alerts (and their blocking rules check),
    # before the digests, CRM tasks and the KPI dbt build.
    assert steps.index("alerts__alerts") < critical
    assert steps.index("alerts__alerts_rules_file_validates") < critical
    for later in ("ops__crm_tasks", "ops__digests", "kpis_dbt"):
        assert critical < steps.index(later), later
    assert "ml__churn_model" not in steps  # a landed day never retrains


def test_steps_on_the_critical_path_go_before_other_ready_steps(ea_env):
    """The in-process executor runs the ready step with the highest dagster/priority first."""
    from dagster._core.execution.api import create_execution_plan

    from orchestration.definitions import LANDING_DAY_JOB, defs

    plan = create_execution_plan(defs.resolve_job_def(LANDING_DAY_JOB))

    def priority(key: str) -> int:
        return int(plan.get_step_by_key(key).tags.get("dagster/priority", 0))

    critical = ("alerts__alerts", "alerts__alerts_rules_file_validates", "ops__critical_alerts")
    others = ("ml__segments", "analytics__views", "ml__account_scores_score_and_feature_drift")
    assert min(priority(k) for k in critical) > max(priority(k) for k in others)


def _materialize_raw_events(instance, job_name: str) -> str:
    """Record a raw/events materialization made by a run of `job_name`; returns the run id."""
    run = instance.create_run_for_job(
        dg.GraphDefinition(name="noop").to_job(name=job_name), run_id=None
    )
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name=job_name,
        event_specific_data=StepMaterializationData(
            dg.AssetMaterialization(asset_key=["raw", "events"], partition="2025-03-04")
        ),
    )
    instance.store_event(
        EventLogEntry(
            error_info=None,
            level="INFO",
            user_message="",
            run_id=run.run_id,
            timestamp=dt.datetime.now(dt.UTC).timestamp(),
            job_name=job_name,
            dagster_event=event,
        )
    )
    return run.run_id


def test_daily_run_follows_only_ingestions_that_did_not_include_it(ea_env):
    from orchestration.definitions import daily_after_ingest_sensor

    with dg.instance_for_test() as instance:
        _materialize_raw_events(instance, "landing_day_job")
        with dg.build_sensor_context(instance=instance) as context:
            result = list(daily_after_ingest_sensor(context))
            assert len(result) == 1 and isinstance(result[0], dg.SkipReason)
            assert "ran the daily assets itself" in result[0].skip_message
            cursor = context.cursor
        run_id = _materialize_raw_events(instance, "ingest_job")
        with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
            (request,) = list(daily_after_ingest_sensor(context))
        assert request.run_key == f"daily-after:{run_id}"


def test_critical_email_step_sends_once_and_leaves_the_sensor_nothing(ea_env, capture, tmp_path):
    from orchestration.defs import deliveries

    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]))
    load_sample(con, DAY)
    con.close()
    config_dir = tmp_path / "config"
    (config_dir / "templates").mkdir(parents=True)
    (config_dir / "templates" / "email").symlink_to(ea_env["EA_CONFIG_DIR"] / "templates" / "email")
    (config_dir / "routing.yml").write_text("admins: [cs-director@example.com]\n")
    resources = {
        "smtp": deliveries.SmtpResource(port=capture.port),
        "chat": deliveries.ChatResource(),
        "inbox": deliveries.inbox_resource(),
        "duckdb": DuckDBResource(database=str(ea_env["DUCKDB_DATABASE"])),
        "paths": PathsResource(
            data_dir=str(ea_env["EA_DATA_DIR"]),
            landing_dir=str(ea_env["EA_LANDING_DIR"]),
            config_dir=str(config_dir),
        ),
    }
    result = dg.materialize([deliveries.critical_alerts], resources=resources)
    meta = result.asset_materializations_for_node("ops__critical_alerts")[0].metadata
    subjects = sorted(m.message["Subject"] for m in capture.messages())
    assert subjects == [
        "Critical: Acme Logistics - churn risk",
        "Critical: Hooli Media - churn risk",
    ]
    assert meta["new_emails"].value == 2 and meta["sent"].value == 2
    # A re-run (a retried step, the same day again) sends nothing twice; nor does the sensor.
    again = dg.materialize([deliveries.critical_alerts], resources=resources)
    assert (
        again.asset_materializations_for_node("ops__critical_alerts")[0]
        .metadata["new_emails"]
        .value
        == 0
    )
    with dg.build_sensor_context(resources=resources) as ctx:
        assert isinstance(deliveries.critical_alert_sensor(ctx), dg.SkipReason)
    assert len(capture.messages()) == 2


def test_run_processes_start_without_the_heavy_ml_libraries(ea_env):
    """Every run process imports the definitions first: mlflow, scikit-learn and lightgbm load
    only in the steps that use them (seconds saved on every run start)."""
    code = (
        "import sys, orchestration.definitions; "
        "print(sorted(m for m in ('mlflow', 'sklearn', 'lightgbm') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]
