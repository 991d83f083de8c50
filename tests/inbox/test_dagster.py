"""The inbox in Dagster: a sensor that only reads the inbox's store asks for a small run, and
that run writes the actions into the warehouse and publishes the inbox snapshot."""

from __future__ import annotations

import importlib.util

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from inbox import store
from orchestration.resources import InboxResource, PathsResource
from tests.notifications.sample import load_sample

from .conftest import DAY, REPO


def _load_stage():
    """The inbox stage's definitions module alone (the whole graph is tested elsewhere)."""
    path = REPO / "orchestration" / "defs" / "inbox.py"
    spec = importlib.util.spec_from_file_location("ea_inbox_defs_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stage = _load_stage()


def test_sensor_requests_a_run_that_applies_actions_and_publishes(ea_env, tmp_path):
    db = ea_env["DUCKDB_DATABASE"]
    con = duckdb.connect(str(db))
    load_sample(con, DAY)
    con.close()
    data = ea_env["EA_DATA_DIR"]
    config = tmp_path / "config"
    config.mkdir()
    (config / "routing.yml").write_text("admins: [cs-director@example.com]\n")
    inbox = InboxResource(public_url="http://127.0.0.1:3001")
    resources = {
        "duckdb": DuckDBResource(database=str(db)),
        "paths": PathsResource(
            data_dir=str(data), landing_dir=str(ea_env["EA_LANDING_DIR"]), config_dir=str(config)
        ),
        "inbox": inbox,
    }
    with dg.build_sensor_context(resources=resources) as ctx:
        assert isinstance(stage.inbox_actions_sensor(ctx), dg.SkipReason)
    st = store.connect(inbox.store(data))
    store.record_action(st, "al_crit_acme", "acknowledge", "ana@example.com", "email")
    # The sensor reads the store while a run holds the warehouse: it never opens DuckDB.
    holder = duckdb.connect(str(db))
    try:
        with dg.build_sensor_context(resources=resources) as ctx:
            request = stage.inbox_actions_sensor(ctx)
    finally:
        holder.close()
    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("inbox-actions:")

    result = dg.materialize(
        [stage.inbox_actions, stage.inbox_snapshot], resources=resources, raise_on_error=True
    )
    meta = result.asset_materializations_for_node("alerts__inbox_actions")[0].metadata
    assert meta["applied"].value == 1 and meta["rejected"].value == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute(
        "select status from alerts.alerts where alert_id = 'al_crit_acme'"
    ).fetchall() == [("acknowledged",)]
    con.close()
    snap = duckdb.connect(str(inbox.snapshot(data)), read_only=True)
    assert snap.execute("select status from alerts where alert_id = 'al_crit_acme'").fetchall() == [
        ("acknowledged",)
    ]
    people = dict(snap.execute("select email, role from people").fetchall())
    snap.close()
    assert people["ana@example.com"] == "csm" and people["cs-director@example.com"] == "admin"
    with dg.build_sensor_context(resources=resources) as ctx:
        assert isinstance(stage.inbox_actions_sensor(ctx), dg.SkipReason)
