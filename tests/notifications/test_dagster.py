"""The deliveries stage in Dagster: sensors and assets run in-process against real servers."""

from __future__ import annotations

import datetime as dt
import importlib.util

import dagster as dg
import duckdb
from dagster._core.test_utils import create_run_for_test
from dagster_duckdb import DuckDBResource

from notifications.capture import free_port
from orchestration.resources import PathsResource
from orchestration.sensing import request_when_due
from tests.conftest import writer_holding
from tests.notifications.sample import load_sample
from warehouse.ops_state import ops_state_path, publish_ops_state

from .conftest import DAY, REPO

DagsterRunStatus = dg.DagsterRunStatus


def _load_stage():
    """This stage's definitions module alone: importing the `orchestration.defs` package would
    build every stage (dbt parsing included), which the whole-graph test already covers."""
    path = REPO / "orchestration" / "defs" / "deliveries.py"
    spec = importlib.util.spec_from_file_location("ea_deliveries_defs_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deliveries = _load_stage()


def _resources(ea_env, config_dir) -> dict:
    return {
        **deliveries.deliveries_resources(),
        "duckdb": DuckDBResource(database=str(ea_env["DUCKDB_DATABASE"])),
        "paths": PathsResource(
            data_dir=str(ea_env["EA_DATA_DIR"]),
            landing_dir=str(ea_env["EA_LANDING_DIR"]),
            config_dir=str(config_dir),
        ),
    }


def _publish(ea_env) -> None:
    """What the alerts step does at its end: publish the work list for the sensors."""
    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]))
    publish_ops_state(con, ops_state_path(ea_env["EA_DATA_DIR"]), "test")
    con.close()


def test_critical_sensor_requests_a_run_then_daily_digest(ea_env, capture, monkeypatch, tmp_path):
    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]))
    load_sample(con, DAY)
    con.close()
    config_dir = tmp_path / "config"
    (config_dir / "templates").mkdir(parents=True)
    (config_dir / "templates" / "email").symlink_to(ea_env["EA_CONFIG_DIR"] / "templates" / "email")
    (config_dir / "routing.yml").write_text("admins: [cs-director@example.com]\n")
    # The resources read their settings from the environment, as in production.
    monkeypatch.setenv("SMTP_PORT", str(capture.port))
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-never-shown")
    monkeypatch.delenv("CRM_MODE", raising=False)
    resources = _resources(ea_env, config_dir)
    instance = dg.DagsterInstance.ephemeral()

    def tick(sensor):
        with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
            return sensor(ctx)

    assert "No work list published yet" in tick(deliveries.critical_alert_sensor).skip_message
    _publish(ea_env)
    # A run holds the warehouse: the sensor decides from the published list all the same,
    # and sends nothing itself.
    with writer_holding(ea_env["DUCKDB_DATABASE"]):
        request = tick(deliveries.critical_alert_sensor)
        assert tick(deliveries.critical_alert_sensor).run_key == request.run_key
    assert isinstance(request, dg.RunRequest)
    assert request.job_name == "critical_alerts_job" and request.tags["ea/due"] == "2 critical"
    assert capture.messages() == []
    # While such a run is in progress, the sensor asks for no second one.
    create_run_for_test(instance, job_name="critical_alerts_job", status=DagsterRunStatus.STARTED)
    assert "already queued or running" in tick(deliveries.critical_alert_sensor).skip_message

    # The run the sensor asked for sends them; the list it publishes leaves nothing owed.
    assert dg.materialize([deliveries.critical_alerts], resources=resources).success
    assert sorted(m.message["Subject"] for m in capture.messages()) == [
        "Critical: Acme Logistics - churn risk",
        "Critical: Hooli Media - churn risk",
    ]
    assert isinstance(tick(deliveries.critical_alert_sensor), dg.SkipReason)

    run_config = {"ops": {"ops__digests": {"config": {"as_of_date": DAY.isoformat()}}}}
    result = dg.materialize(
        [deliveries.crm_tasks, deliveries.digests, deliveries.outbox],
        resources=resources,
        run_config=run_config,
    )
    assert result.success
    digests = result.asset_materializations_for_node("ops__digests")[0].metadata
    # 5 people with a book + the admin + the data team, owner of the warehouse-wide data alert
    # (routing.yml here names no data_team: the alert's owner still sees and gets it).
    assert digests["recipients"].value == 7 and digests["sent"].value == 7
    tasks = result.asset_materializations_for_node("ops__crm_tasks")[0].metadata
    assert tasks["mode"].value == "record" and tasks["recorded"].value == 4
    outbox = result.asset_materializations_for_node("ops__outbox")[0].metadata
    assert outbox["outbox_sent"].value == 9 and outbox["outbox_dead"].value == 0
    assert "hunter2" not in str(digests) + str(tasks) + str(outbox)
    assert len(capture.messages()) == 9

    # Re-materializing the same day sends nothing new.
    assert dg.materialize([deliveries.digests], resources=resources, run_config=run_config).success
    assert len(capture.messages()) == 9
    assert "Nothing due" in tick(deliveries.outbox_retry_sensor).skip_message


def test_outbox_retry_sensor_requests_a_delivery_run_once_the_backoff_passes(
    ea_env, capture, tmp_path
):
    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]))
    load_sample(con, DAY)
    con.close()
    resources = {
        **_resources(ea_env, ea_env["EA_CONFIG_DIR"]),
        "smtp": deliveries.SmtpResource(port=free_port(), timeout_seconds=1),
    }
    instance = dg.DagsterInstance.ephemeral()

    def tick(now):
        with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
            paths = resources["paths"]
            return request_when_due(ctx, paths, ["delivery"], "outbox_delivery_job", now)

    # The relay is down: the critical step queues the mail, fails to send, publishes the list.
    assert dg.materialize([deliveries.critical_alerts], resources=resources).success
    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]), read_only=True)
    retry_at, last = con.execute(
        "select min(next_attempt_at), max(next_attempt_at) from ops.outbox"
    ).fetchall()[0]
    con.close()
    assert "Nothing due" in tick(retry_at - dt.timedelta(seconds=1)).skip_message
    request = tick(retry_at)
    assert isinstance(request, dg.RunRequest) and request.job_name == "outbox_delivery_job"
    # The relay is back: the requested run (once both are due) sends both, publishes the list.
    resources["smtp"] = deliveries.SmtpResource(port=capture.port)
    run_config = {"ops": {"deliver_outbox": {"config": {"now": last.isoformat()}}}}
    result = deliveries.outbox_delivery_job.execute_in_process(
        resources=resources, run_config=run_config
    )
    assert result.success
    # The two critical emails, and for each the data team's notice that it was delayed (queued
    # at the first failure, when the relay was down too).
    subjects = sorted(m.message["Subject"] for m in capture.messages())
    assert [s for s in subjects if s.startswith("Critical:")] == [
        "Critical: Acme Logistics - churn risk",
        "Critical: Hooli Media - churn risk",
    ]
    notices = [m for m in capture.messages() if m.message["Subject"].startswith("Delayed")]
    assert len(notices) == 2 and all(m.envelope_to == ["data-team@example.com"] for m in notices)
    assert "Nothing due" in tick(last + dt.timedelta(days=1)).skip_message


def test_hubspot_tasks_and_status_sync_sensor(ea_env, monkeypatch):
    from tests.notifications.crm_servers import HubSpotServer

    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]))
    load_sample(con, DAY)
    con.close()
    with HubSpotServer(token="tok-123") as hubspot:
        monkeypatch.setenv("CRM_MODE", "hubspot")
        monkeypatch.setenv("HUBSPOT_BASE_URL", hubspot.url)
        monkeypatch.setenv("HUBSPOT_TOKEN", "tok-123")
        resources = _resources(ea_env, ea_env["EA_CONFIG_DIR"])
        result = dg.materialize([deliveries.crm_tasks], resources=resources)
        meta = result.asset_materializations_for_node("ops__crm_tasks")[0].metadata
        assert meta["mode"].value == "hubspot" and meta["sent"].value == 4
        assert "tok-123" not in str(meta)
        task_id = next(
            k for k, t in hubspot.tasks.items() if t["properties"]["ea_alert_id"] == "al_crit_hooli"
        )
        hubspot.complete(task_id, notes="Exec sponsor call done.")
        with dg.build_sensor_context(
            instance=dg.DagsterInstance.ephemeral(), resources=resources
        ) as ctx:
            request = deliveries.crm_status_sync_sensor(ctx)
        assert request.job_name == "crm_status_sync_job" and request.tags["ea/due"] == "4 crm_task"
        result = deliveries.crm_status_sync_job.execute_in_process(resources=resources)
        assert result.success
        (observation,) = [
            e.event_specific_data.asset_observation
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
        assert observation.metadata["sync_resolved"].value == 1
    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]))
    status, reason = con.execute(
        "select status, resolution_reason from alerts.alerts where alert_id = 'al_crit_hooli'"
    ).fetchall()[0]
    con.close()
    assert status == "resolved" and reason == "task completed: Exec sponsor call done."


def test_blocking_check_fails_the_run_and_tells_the_data_team(ea_env, capture, tmp_path):
    from tests.notifications.chat_servers import SlackWebhookServer

    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]))
    load_sample(con, DAY)
    # The two critical alerts were seen on DAY, the latest evaluated day, and nobody was told.
    con.execute("update alerts.alerts set last_seen_on = ? where severity = 'critical'", [DAY])
    con.execute("insert into alerts.evaluation_runs (as_of_date, evaluated_at) values (?, now())",
                [DAY])  # fmt: skip
    con.close()
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "routing.yml").write_text(
        "admins: [cs-director@example.com]\ndata_team: data-team@example.com\n"
        "second_channel: {critical: [slack], data_team: [slack]}\n"
    )
    with SlackWebhookServer() as slack:
        resources = {
            **_resources(ea_env, config_dir),
            "smtp": deliveries.SmtpResource(port=capture.port),
            "chat": deliveries.ChatResource(slack_webhook_url=slack.url),
        }
        result = dg.materialize(
            [deliveries.outbox, deliveries.critical_alerts_delivered],
            resources=resources,
            raise_on_error=False,
        )
        (check,) = result.get_asset_check_evaluations()
        assert check.passed is False and check.metadata["violations"].value == 2
        (post,) = slack.received
        assert post["text"].startswith(f"Critical alerts not delivered for {DAY}: 2 alert(s)")
    (mail,) = capture.messages()
    assert mail.envelope_to == ["data-team@example.com"]
    assert not result.success  # blocking: the failed check fails the run
