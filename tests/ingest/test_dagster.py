import datetime as dt
import gzip
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from orchestration.defs.ingest import (
    landing_days,
    landing_sensor,
    partition_range_tags,
    raw_landing,
    register_landing_days,
)
from orchestration.resources import shared_resources
from tests.ingest.conftest import account, event, user, write_day

REPO = Path(__file__).resolve().parents[2]

DAYS = ["2025-03-04", "2025-03-05"]


def write_two_days(landing):
    write_day(landing, DAYS[0], events=[event("m1"), event("m2"), "{broken"],
              accounts=[account("a1")], users=[user("u1", "a1")])  # fmt: skip
    write_day(landing, DAYS[1], events=[event("m2"), event("m3", ts="2025-03-05T10:00:00Z")])


@pytest.fixture()
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def materialize(instance, **kw):
    return dg.materialize(
        [raw_landing], instance=instance, resources=shared_resources(), raise_on_error=False, **kw
    )


def test_definitions_load_with_the_ingest_objects():
    from orchestration.definitions import defs

    assert defs.resolve_job_def("ingest_job") is not None
    assert defs.resolve_sensor_def("landing_sensor") is not None
    assert defs.resolve_schedule_def("ingest_daily") is not None
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw/events", "raw/accounts", "raw/users", "raw/outcomes"} <= keys
    blocking = {
        (spec.asset_key.path[-1], spec.name): spec.blocking for spec in raw_landing.check_specs
    }
    # What would poison the marts stops downstream assets; the rest only warns.
    assert blocking[("events", "message_id_unique")] and blocking[("events", "event_at_not_future")]
    assert not blocking[("events", "event_name_canonical")]
    assert not blocking[("accounts", "seats_positive")]


def test_materialize_partitions_one_by_one_and_as_a_range(ea_env, instance):
    write_two_days(ea_env["EA_LANDING_DIR"])
    assert register_landing_days(instance, ea_env["EA_LANDING_DIR"]) == DAYS

    first = materialize(instance, partition_key=DAYS[0])
    assert first.success
    mats = {
        m.asset_key.to_user_string(): m.metadata
        for m in first.asset_materializations_for_node("raw_landing")
    }
    events = mats["raw/events"]
    assert events["rows_loaded"].value == 2
    assert events["rows_quarantined"].value == 1
    assert events["quarantined_by_reason"].value == {"malformed_json": 1}
    assert "malformed_json" in events["quarantine_examples"].value
    assert mats["raw/accounts"]["rows_loaded"].value == 1
    checks = first.get_asset_check_evaluations()
    assert len(checks) == 16 and all(c.passed for c in checks)
    # Each check says what it validated: one small day is checked whole.
    by_name = {(c.asset_key.path[-1], c.check_name): c.metadata for c in checks}
    canonical = by_name[("events", "event_name_canonical")]
    assert canonical["checked_rows"].value == canonical["rows_in_scope"].value == 2
    assert canonical["scope"].value == "1 landing day(s), all 2 rows"

    both = materialize(instance, tags=partition_range_tags(DAYS[0], DAYS[1]))
    assert both.success
    (events,) = [
        m for m in both.asset_materializations_for_node("raw_landing")
        if m.asset_key == dg.AssetKey(["raw", "events"])
    ][:1]  # fmt: skip
    assert events.metadata["landing_days"].value == 2
    assert events.metadata["duplicates_dropped"].value == 1
    with duckdb.connect(str(ea_env["DUCKDB_DATABASE"]), read_only=True) as con:
        ids = con.execute("select list(message_id order by message_id) from raw.events").fetchone()
    assert ids[0] == ["m1", "m2", "m3"]


def test_unreadable_file_fails_the_run_with_the_file_named(ea_env, instance):
    write_two_days(ea_env["EA_LANDING_DIR"])
    folder = ea_env["EA_LANDING_DIR"] / DAYS[1]
    (folder / "events-001.jsonl.gz").write_bytes(gzip.compress(b'{"x": 1}\n' * 500)[:50])
    (folder / "_manifest.json").unlink()
    write_day(ea_env["EA_LANDING_DIR"], DAYS[1], events=[event("m3")])  # rewrites the manifest
    instance.add_dynamic_partitions(landing_days.name, DAYS)
    result = materialize(instance, partition_key=DAYS[1])
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "events-001.jsonl.gz" in failure.message


def test_sensor_registers_new_days_and_reacts_only_to_changes(ea_env, instance):
    landing = ea_env["EA_LANDING_DIR"]
    write_two_days(landing)
    (landing / "2025-03-06").mkdir()  # still being written: no manifest yet
    resources = {"paths": shared_resources()["paths"]}

    ctx = dg.build_sensor_context(instance=instance, resources=resources)
    result = landing_sensor(ctx)
    assert result.dynamic_partitions_requests[0].partition_keys == DAYS
    (req,) = result.run_requests
    assert req.tags[ASSET_PARTITION_RANGE_START_TAG] == DAYS[0]
    assert req.tags[ASSET_PARTITION_RANGE_END_TAG] == DAYS[1]
    cursor = result.cursor
    assert set(json.loads(cursor)) == set(DAYS)

    instance.add_dynamic_partitions(landing_days.name, DAYS)
    again = landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                   resources=resources))  # fmt: skip
    assert isinstance(again, dg.SkipReason)

    # A re-exported day (new manifest) is loaded again, alone, under a new run key.
    write_day(landing, DAYS[1], events=[event("m9", ts="2025-03-05T10:00:00Z")])
    changed = landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                     resources=resources))  # fmt: skip
    (req,) = changed.run_requests
    assert req.partition_key == DAYS[1] and req.run_key.startswith(DAYS[1] + ":")
    assert req.run_key not in {r.run_key for r in result.run_requests}
    assert changed.dynamic_partitions_requests == []


def test_daily_schedule_loads_every_day_not_loaded_yet(ea_env, instance):
    from orchestration.defs.ingest import ingest_daily

    write_two_days(ea_env["EA_LANDING_DIR"])

    def tick():
        ctx = dg.build_schedule_context(
            instance=instance,
            resources={"paths": shared_resources()["paths"]},
            scheduled_execution_time=dt.datetime(2025, 3, 6, 6, 30, tzinfo=dt.UTC),
        )
        return ingest_daily(ctx)

    req = tick()
    assert instance.get_dynamic_partitions(landing_days.name) == DAYS
    assert req.tags[ASSET_PARTITION_RANGE_START_TAG] == DAYS[0]
    assert req.tags[ASSET_PARTITION_RANGE_END_TAG] == DAYS[1]
    assert materialize(instance, partition_key=DAYS[0]).success
    req = tick()
    assert req.partition_key == DAYS[1] and req.run_key.startswith(DAYS[1] + ":")


def test_load_history_job_loads_an_export_with_metadata_and_checks(ea_env, instance):
    from orchestration.definitions import defs

    job = defs.resolve_job_def("load_history_job")
    config = {
        "mapping": "byo_mapping.example.yml",  # found in EA_CONFIG_DIR
        "paths": [str(REPO / "data" / "byo" / "portal_export_2025-03-04.csv")],
    }
    result = job.execute_in_process(
        instance=instance, run_config={"ops": {"raw__history": {"config": config}}}
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("raw__history")
    meta = {k: v.value for k, v in mat.metadata.items()}
    # No snapshots at all: every account in the export is an account; the one bad timestamp
    # and the copied line are the only rows not loaded.
    assert (meta["rows_read"], meta["rows_loaded"], meta["duplicates_dropped"]) == (11, 9, 1)
    assert meta["quarantined_by_reason"] == {"bad_type": 1}
    assert meta["history_covers"] == "2025-03-03..2025-03-04"
    assert "portal_export_2025-03-04.csv" in meta["files"] and "bad_type" in meta[
        "quarantine_examples"
    ]
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    # A run without config says what to give.
    failed = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    message = failed.get_step_failure_events()[0].step_failure_data.error.message
    assert "mapping" in message and "paths" in message


def test_landing_exports_load_through_the_configured_mapping(ea_env, instance, tmp_path,
                                                             monkeypatch):  # fmt: skip
    # The team's mapping in EA_CONFIG_DIR: landing folders may then carry their own exports.
    config = tmp_path / "config"
    config.mkdir()
    (config / "event_mapping.yml").write_text(
        (REPO / "config" / "byo_mapping.example.yml").read_text()
    )
    monkeypatch.setenv("EA_CONFIG_DIR", str(config))
    landing = ea_env["EA_LANDING_DIR"]
    (landing / "2025-03-04").mkdir()
    (landing / "2025-03-04" / "portal_export.csv").write_bytes(
        (REPO / "data" / "byo" / "portal_export_2025-03-04.csv").read_bytes()
    )
    write_day(landing, "2025-03-04", accounts=[account("a_00001"), account("a_00002")],
              users=[user("u_00001_001", "a_00001"), user("u_00001_002", "a_00001"),
                     user("u_00002_001", "a_00002")])  # fmt: skip
    register_landing_days(instance, landing)
    result = materialize(instance, partition_key="2025-03-04")
    assert result.success
    (events,) = [
        m.metadata for m in result.asset_materializations_for_node("raw_landing")
        if m.asset_key == dg.AssetKey(["raw", "events"])
    ]  # fmt: skip
    assert (events["files"].value, events["rows_loaded"].value) == (1, 8)
    assert events["quarantined_by_reason"].value == {"bad_type": 1, "unknown_account": 1}
