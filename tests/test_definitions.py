"""Tier 1: the Dagster definitions load, validate, and expose the stages the README promises."""

from __future__ import annotations

import importlib

import dagster as dg


def test_definitions_load_and_validate(ea_env):
    module = importlib.import_module("orchestration.definitions")
    defs = module.defs
    repo = defs.get_repository_def()
    # Loading the full graph resolves every asset dependency and resource requirement.
    repo.load_all_definitions()
    dg.Definitions.validate_loadable(defs)


def test_libraries_do_not_import_dagster():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    offenders = []
    for package in ("simulator", "ingest", "ml", "alerts", "notifications"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            if "import dagster" in text or "from dagster" in text:
                offenders.append(str(path.relative_to(root)))
    assert offenders == [], f"libraries must not import dagster: {offenders}"


def test_daily_run_follows_an_ingestion(ea_env):
    """A materialization of raw events asks for a daily run keyed by that ingestion run."""
    from orchestration.definitions import daily_after_ingest_sensor

    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=["raw", "events"], partition="2025-03-04")
        )
        with dg.build_sensor_context(instance=instance) as context:
            first = daily_after_ingest_sensor(context)
            requests = list(first) if not isinstance(first, dg.RunRequest) else [first]
            assert len(requests) == 1 and requests[0].run_key.startswith("daily-after:")
            assert requests[0].job_name in (None, "daily_job")


def test_every_asset_that_sends_over_the_network_retries(ea_env):
    """Assets that talk to SMTP or a CRM get a Dagster retry policy (transient faults heal)."""
    from orchestration.definitions import defs

    repo = defs.get_repository_def()
    sending = [["ops", "crm_tasks"], ["ops", "digests"], ["ops", "kpi_email"]]
    for path in sending:
        key = dg.AssetKey(path)
        policy = repo.asset_graph.get(key).assets_def.node_def.retry_policy
        assert policy is not None and policy.max_retries >= 1, f"{key.to_user_string()} has none"


def test_warehouse_connections_are_memory_bounded(ea_env, monkeypatch):
    from orchestration.resources import shared_resources

    monkeypatch.setenv("EA_DUCKDB_MEMORY_LIMIT", "300MB")
    import dagster as dg

    with dg.build_resources({"duckdb": shared_resources()["duckdb"]}) as built:
        with built.duckdb.get_connection() as con:
            limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    # DuckDB reports the bound back in its own units (300 MB = 286.1 MiB).
    assert limit.startswith("286")
