import datetime as dt

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml import registry
from orchestration.defs import ml as ml_defs
from orchestration.resources import shared_resources
from tests.ml.conftest import HORIZON
from tests.ml.synthetic import daily_engagement

AS_OF = "2025-03-30"
# Plumbing on the synthetic grid: the gate's positives and flood limits are loosened here (the
# gate itself is tested in test_promotion.py, the models on CDNOW in test_cdnow.py).
TRAIN_CONFIG = {
    "config": {
        "horizon_days": HORIZON,
        "num_boost_round": 150,
        "bootstrap_samples": 50,
        "min_positive_accounts": 3,
        "max_alerts_per_csm_week": 1000.0,
    }
}
AS_OF_CONFIG = {"config": {"as_of_date": AS_OF}}
RUN_CONFIG = {
    "ops": {
        "ml__churn_model": TRAIN_CONFIG,
        "ml__expansion_model": TRAIN_CONFIG,
        "ml__account_scores": AS_OF_CONFIG,
        "ml__anomalies": AS_OF_CONFIG,
        "ml__segments": AS_OF_CONFIG,
    }
}


@pytest.fixture()
def warehouse(ea_env, grid):
    """The three marts the ml stage reads, built from synthetic frames in the test's DuckDB."""
    last = pd.to_datetime(grid["as_of_date"]).max()
    health = grid[pd.to_datetime(grid["as_of_date"]) == last].assign(
        as_of_date=dt.date.fromisoformat(AS_OF)
    )
    today = grid[pd.to_datetime(grid["as_of_date"]) == last].assign(
        as_of_date=dt.date.fromisoformat(AS_OF)
    )
    con = duckdb.connect(str(ea_env["DUCKDB_DATABASE"]))
    con.execute("create schema marts")
    for name, frame in (
        # the weekly grid plus the run's as-of date, as the marts build it
        ("ml_features", pd.concat([grid, today], ignore_index=True)),
        ("account_health", health),
        ("fct_account_daily_engagement", daily_engagement()),
    ):
        con.register("frame_in", frame)
        con.execute(f"create table marts.{name} as select * from frame_in")
        con.unregister("frame_in")
    # Regions, for the regional holidays in config/holidays.yml.
    con.execute(
        "create table marts.dim_accounts as select distinct account_id, 'EMEA' as region, "
        "'csm@example.com' as csm_email from marts.ml_features"
    )
    con.close()
    return ea_env


def _resources():
    return {**shared_resources(), "mlflow": ml_defs.mlflow_resource()}


def _checks(result):
    return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}


def test_ml_definitions_load_with_the_shared_resources():
    defs = dg.Definitions.merge(ml_defs.defs, dg.Definitions(resources=shared_resources()))
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"ml/churn_model", "ml/expansion_model", "ml/account_scores"} <= keys
    assert {"ml/anomalies", "ml/segments"} <= keys
    assert defs.resolve_job_def("training_job") is not None
    assert defs.resolve_schedule_def("weekly_training").cron_schedule == "0 3 * * 1"
    # Without run config the embargo follows the label windows marts.ml_features is built with.
    horizons = ml_defs.dbt_label_horizons()
    assert all(isinstance(h, int) and h > 0 for h in horizons.values())
    cfg = ml_defs.train_config("expansion", ml_defs.TrainingConfig(), "expansion")
    assert (cfg.label, cfg.horizon_days) == ("label_expand", horizons["expansion"])
    cfg = ml_defs.train_config("churn", ml_defs.TrainingConfig(), "inactivity")
    assert (cfg.label, cfg.horizon_days) == ("label_inactive", horizons["inactivity"])


def test_train_promote_score_then_gate_blocks_a_retrain_that_is_no_better(warehouse):
    assets = [
        ml_defs.churn_model,
        ml_defs.expansion_model,
        ml_defs.churn_promotion,
        ml_defs.expansion_promotion,
        ml_defs.account_scores,
        ml_defs.anomalies,
        ml_defs.segments,
    ]
    first = dg.materialize(assets, resources=_resources(), run_config=RUN_CONFIG)
    assert first.success
    checks = _checks(first)
    assert checks["churn_model"].passed and checks["expansion_model"].passed
    meta = first.asset_materializations_for_node("ml__churn_model")[0].metadata
    assert "frequency" in meta["metrics_vs_baselines"].value
    assert meta["best_baseline"].value in {"recency", "frequency", "health_score", "calendar"}

    con = duckdb.connect(str(warehouse["DUCKDB_DATABASE"]), read_only=True)
    scores = con.execute(
        "select model_name, model_version, count(*) from ml.account_scores group by all order by 1"
    ).fetchall()
    assert [(m, v) for m, v, _ in scores] == [("churn", "1"), ("expansion", "1")]
    assert con.execute("select count(*) from ml.segments").fetchone()[0] == scores[0][2]
    assert con.execute("select count(*) from ml.anomalies").fetchone()[0] >= 0
    con.close()

    # Same data, same seed: the new version is no better than the champion, so the blocking
    # check refuses it and the scores downstream are not rebuilt with it.
    second = dg.materialize(
        [ml_defs.churn_model, ml_defs.churn_promotion, ml_defs.account_scores],
        resources=_resources(),
        run_config={
            "ops": {k: RUN_CONFIG["ops"][k] for k in ("ml__churn_model", "ml__account_scores")}
        },
        raise_on_error=False,
    )
    check = _checks(second)["churn_model"]
    assert not check.passed
    assert "vs champion v1" in check.metadata["reason"].value
    assert "**fail**" in check.metadata["checks"].value
    assert not second.asset_materializations_for_node("ml__account_scores")
    tracking = f"sqlite:///{warehouse['EA_DATA_DIR'] / 'mlflow.db'}"
    assert registry.champion_version(tracking, "churn_model") == "1"
    assert (warehouse["EA_DATA_DIR"] / "mlflow-artifacts").is_dir()
