"""The marts definitions load, keys follow the contract, and the run's dbt arguments are right."""

import datetime as dt
import json

import dagster as dg
import pytest
import yaml

from tests.marts.conftest import REPO, marts_module

D = dt.date


def test_dbt_assets_use_schema_keys_and_raw_sources():
    marts = marts_module()
    keys = {k.to_user_string() for k in marts.marts_dbt.keys}
    for name in marts.MARTS:
        assert f"marts/{name}" in keys
    assert "marts/feature_catalog" in keys
    assert {k.split("/")[0] for k in keys} == {"staging", "intermediate", "marts"}
    # only this stage's folders: other stages' dbt models are built by their own assets
    assert all(k.startswith("staging/stg_raw__") for k in keys if k.startswith("staging/"))
    upstream = {k.to_user_string() for k in marts.marts_dbt.dependency_keys} - keys
    assert {"raw/events", "raw/accounts", "raw/users", "raw/outcomes"} <= upstream
    assert set(marts.marts_dbt.group_names_by_key.values()) == {"staging", "intermediate", "marts"}
    checks = {c.asset_key.to_user_string() for c in marts.marts_dbt.check_specs}
    assert {"marts/account_health", "marts/fct_account_daily_engagement"} <= checks
    assert isinstance(marts.defs.resources["dbt"], marts.DbtCliResource)


def test_the_merged_definitions_include_the_marts_job_and_assets():
    from orchestration.definitions import defs

    job = defs.resolve_job_def("marts_job")
    assert job is not None
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey(["marts", "account_health"]) in graph.get_all_asset_keys()
    # ml's assets hang off the marts they read
    assert dg.AssetKey(["marts", "ml_features"]) in graph.get_all_asset_keys()


def test_first_run_builds_all_history_in_year_batches():
    marts = marts_module()
    w = marts.build_window(as_of=D(2025, 6, 30), first_landed=D(2025, 1, 1), latest_built=None)
    assert (w.start, w.end, w.batch_size, w.full_refresh) == (
        D(2025, 1, 1),
        D(2025, 7, 1),
        "year",
        True,
    )


def test_many_accounts_build_in_month_batches_to_stay_within_memory():
    marts = marts_module()
    # CDNOW: 23,570 customers over 546 days; the large benchmark tier: 5,000 accounts, a year
    cdnow = marts.build_window(D(1998, 6, 30), D(1997, 1, 1), None, accounts=23_570)
    large = marts.build_window(D(2025, 10, 31), D(2024, 11, 1), None, accounts=5_000)
    assert (cdnow.batch_size, large.batch_size) == ("month", "year")


def test_daily_run_rebuilds_the_new_day_and_the_late_event_lookback():
    marts = marts_module()
    w = marts.build_window(D(2025, 6, 30), D(2025, 1, 1), latest_built=D(2025, 6, 29))
    assert (w.start, w.end, w.batch_size, w.full_refresh) == (
        D(2025, 6, 25),
        D(2025, 7, 1),
        "month",
        False,
    )
    # skipped days are caught up; a replay of an older day still covers its lookback
    assert marts.build_window(D(2025, 6, 30), D(2025, 1, 1), D(2025, 6, 20)).start == D(2025, 6, 16)
    replay = marts.build_window(D(2025, 3, 1), D(2025, 1, 1), D(2025, 6, 20))
    assert replay.start == D(2025, 2, 24)
    # day batches, so March's later days (built by a later run) are not deleted by the replay
    assert replay.batch_size == "day"
    catch_up = marts.build_window(D(2025, 6, 30), D(2025, 1, 1), D(2025, 4, 30))
    assert (catch_up.start, catch_up.batch_size, catch_up.full_refresh) == (
        D(2025, 4, 26),
        "year",
        False,
    )
    assert marts.build_window(D(2025, 1, 2), D(2025, 1, 1), D(2025, 1, 1)).start == D(2025, 1, 1)
    forced = marts.build_window(D(2025, 6, 30), D(2025, 1, 1), D(2025, 6, 29), full_refresh=True)
    assert forced.full_refresh and forced.start == D(2025, 1, 1)


def test_build_args_pass_the_as_of_date_and_health_config_as_vars():
    marts = marts_module()
    w = marts.build_window(D(2025, 6, 30), D(2025, 1, 1), D(2025, 6, 29))
    health = marts.load_health_config(REPO / "config")
    args = marts.dbt_build_args(w, marts.dbt_vars(D(2025, 6, 30), w, D(2025, 1, 1), health))
    assert args[0] == "build" and "--full-refresh" not in args
    assert args[args.index("--event-time-start") + 1] == "2025-06-25"
    assert args[args.index("--event-time-end") + 1] == "2025-07-01"
    variables = json.loads(args[args.index("--vars") + 1])
    assert variables["as_of_date"] == "2025-06-30"
    assert variables["microbatch_size"] == "month"
    assert variables["health_score"]["components"]["seat_utilisation"]["weight"] == 30
    # daily runs skip dbt's unit tests (they test the SQL, not the day); full refreshes run them
    assert args[args.index("--exclude-resource-type") + 1] == "unit_test"
    full = marts.build_window(D(2025, 6, 30), D(2025, 1, 1), None)
    full_args = marts.dbt_build_args(full, {})
    assert "--full-refresh" in full_args and "--exclude-resource-type" not in full_args


def test_health_config_file_and_dbt_defaults_are_identical():
    """A plain `dbt build` must score exactly like the Dagster run that passes the file."""
    from_file = yaml.safe_load((REPO / "config" / "health_score.yml").read_text())
    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text())
    assert project["vars"]["health_score"] == from_file
    weights = [c["weight"] for c in from_file["components"].values()]
    assert sum(weights) == 100


def test_health_config_errors_name_the_file_to_fix(tmp_path):
    marts = marts_module()
    with pytest.raises(dg.Failure, match="health_score.yml is missing"):
        marts.load_health_config(tmp_path)
    (tmp_path / "health_score.yml").write_text("components: [unclosed\n")
    with pytest.raises(dg.Failure, match="not valid YAML"):
        marts.load_health_config(tmp_path)
    (tmp_path / "health_score.yml").write_text("tiers: {}\n")
    with pytest.raises(dg.Failure, match="`components` section"):
        marts.load_health_config(tmp_path)


@pytest.mark.slow
def test_weights_that_do_not_add_up_fail_dbt_with_a_message_naming_the_file(tmp_path):
    import os
    import subprocess

    marts = marts_module()
    health = marts.load_health_config(REPO / "config")
    health["components"]["seat_utilisation"]["weight"] = 50
    result = subprocess.run(
        [
            marts.DBT_EXECUTABLE,
            "compile",
            "--select",
            "account_health",
            "--vars",
            json.dumps({"health_score": health}),
            "--project-dir",
            str(marts.DBT_DIR),
            "--profiles-dir",
            str(marts.DBT_DIR),
            "--target-path",
            str(tmp_path / "target"),
        ],
        env={**os.environ, "DUCKDB_DATABASE": str(tmp_path / "unused.duckdb")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "add up to 120, not 100" in result.stdout
    assert "config/health_score.yml" in result.stdout
