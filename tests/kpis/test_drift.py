"""The PSI drift check: fires on a shifted distribution, stays quiet on an unshifted one."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from ml.drift import drift_report, psi
from orchestration.defs.kpis import score_and_feature_drift

START = dt.date(2025, 1, 6)


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, 5000)
    assert psi(reference, rng.normal(0, 1, 800)) < 0.05
    assert psi(reference, rng.normal(1.0, 1, 800)) > 0.25
    with pytest.raises(ValueError, match="values on both sides"):
        psi(reference, [])


def _warehouse(path, shift: float):
    """Weekly ml_features rows for 20 weeks and 14 days of churn scores; the last week can be
    shifted (feature and score) by `shift`."""
    rng = np.random.default_rng(11)
    con = duckdb.connect(str(path))
    con.execute("create schema marts; create schema ml")
    con.execute(
        "create table marts.ml_features (account_id string, as_of_date date, logins_28d double, "
        "seat_utilisation double, label_churn integer, is_label_observable boolean)"
    )
    con.execute(
        "create table ml.account_scores (account_id string, as_of_date date, model_name string, "
        "model_version string, probability double)"
    )
    features, scores = [], []
    for week in range(20):
        day = START + dt.timedelta(weeks=week)
        last = week == 19
        for i in range(150):
            logins = rng.normal(100, 20) + (shift * 20 if last else 0)
            features.append((f"a{i}", day, logins, rng.uniform(0, 1), 0, week < 15))
    score_start = START + dt.timedelta(weeks=19) - dt.timedelta(days=13)
    for d in range(14):
        day = score_start + dt.timedelta(days=d)
        for i in range(150):
            p = rng.beta(2, 20) + (shift * 0.15 if d >= 7 else 0)
            scores.append((f"a{i}", day, "churn", "3", min(p, 1.0)))
    # DataFrame inserts: executemany is slow in DuckDB.
    con.register("_features", pd.DataFrame(features))
    con.register("_scores", pd.DataFrame(scores))
    con.execute("insert into marts.ml_features select * from _features")
    con.execute("insert into ml.account_scores select * from _scores")
    con.unregister("_features")
    con.unregister("_scores")
    return con


def test_drift_report_is_quiet_without_a_shift_and_asks_for_retraining_with_one(tmp_path):
    as_of = START + dt.timedelta(weeks=19)
    quiet = drift_report(_warehouse(tmp_path / "quiet.duckdb", shift=0.0), as_of)
    assert quiet.score_psi and quiet.feature_psi
    assert not quiet.should_retrain, quiet.drifted
    loud = drift_report(_warehouse(tmp_path / "loud.duckdb", shift=1.0), as_of)
    assert loud.should_retrain
    assert "score:churn" in loud.drifted and "feature:logins_28d" in loud.drifted
    assert "feature:seat_utilisation" not in loud.drifted  # unchanged feature stays quiet
    assert loud.summary().startswith("Retrain the models")


@pytest.mark.parametrize(("shift", "passed"), [(0.0, True), (1.0, False)])
def test_dagster_check_warns_only_on_drift(tmp_path, shift, passed):
    db = tmp_path / f"w{shift}.duckdb"
    _warehouse(db, shift).close()
    result = score_and_feature_drift(duckdb=DuckDBResource(database=str(db)))
    assert result.passed is passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["should_retrain"].value is (not passed)
