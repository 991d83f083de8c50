"""Runs are serialised: sensors decide from files the runs publish and only request runs; none
opens the warehouse, so none writes outside the one-at-a-time run queue."""

from __future__ import annotations

import dagster as dg
import duckdb

from tests.conftest import writer_holding
from tests.notifications.conftest import DAY
from tests.notifications.sample import load_sample
from warehouse.ops_state import ops_state_path, publish_ops_state


def test_every_sensor_ticks_while_a_run_holds_the_warehouse(ea_env):
    db = ea_env["DUCKDB_DATABASE"]
    con = duckdb.connect(str(db))
    load_sample(con, DAY)  # open alerts, critical ones among them: work is due
    publish_ops_state(con, ops_state_path(ea_env["EA_DATA_DIR"]), "test")
    con.close()
    from orchestration.definitions import defs

    sensors = [s for s in defs.sensors if not isinstance(s, dg.AssetSensorDefinition)]
    assert {s.name for s in sensors} >= {
        "landing_sensor", "critical_alert_sensor", "outbox_retry_sensor",
        "crm_status_sync_sensor", "sla_breach_sensor", "inbox_actions_sensor",
    }  # fmt: skip
    instance = dg.DagsterInstance.ephemeral()
    answers = {}
    # DuckDB locks the file across processes: a sensor that opened the warehouse, even
    # read-only, would fail here with a lock error.
    with writer_holding(db):
        for sensor in sensors:
            assert "duckdb" not in sensor.required_resource_keys, sensor.name
            with dg.build_sensor_context(instance=instance, resources=defs.resources) as ctx:
                answers[sensor.name] = sensor(ctx)
    assert all(
        isinstance(a, dg.RunRequest | dg.SkipReason | dg.SensorResult) for a in answers.values()
    ), answers
    # The critical alerts are due: the sensor asked for a run rather than doing the work.
    assert isinstance(answers["critical_alert_sensor"], dg.RunRequest), answers
