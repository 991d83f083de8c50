"""Score accounts for one as-of date with the champion model and write `ml.account_scores`."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from ml.config import ScoreConfig
from ml.features import feature_matrix
from ml.registry import ChampionModel

SCORE_COLUMNS = [
    "account_id",
    "as_of_date",
    "model_name",
    "model_version",
    "mlflow_run_id",
    "probability",
    "percentile",
    "band",
    "driver_1",
    "driver_1_contribution",
    "driver_2",
    "driver_2_contribution",
    "driver_3",
    "driver_3_contribution",
    "drivers_json",
    "scored_at",
]

DDL = """
create schema if not exists ml;
create table if not exists ml.account_scores (
    account_id varchar not null,
    as_of_date date not null,
    model_name varchar not null,
    model_version varchar not null,
    mlflow_run_id varchar not null,
    probability double not null,
    percentile double not null,
    band varchar not null,
    driver_1 varchar,
    driver_1_contribution double,
    driver_2 varchar,
    driver_2_contribution double,
    driver_3 varchar,
    driver_3_contribution double,
    drivers_json varchar not null,
    scored_at timestamp not null,
    primary key (account_id, as_of_date, model_name)
);
"""

BANDS = np.array(["low", "medium", "high", "very_high"])


def load_health_frame(con, as_of_date: dt.date) -> pd.DataFrame:
    """The `marts.account_health` rows of one day, without dormant accounts (for segments).

    Raises:
        ValueError: the mart has no rows for that day.
    """
    frame = con.execute(
        "select * from marts.account_health where as_of_date = ? order by account_id", [as_of_date]
    ).df()
    if frame.empty:
        raise ValueError(
            f"marts.account_health has no rows for {as_of_date}: build the marts for that day "
            "or choose another as_of_date."
        )
    if "is_dormant" in frame.columns:
        frame = frame[~frame["is_dormant"].fillna(False).astype(bool)].reset_index(drop=True)
    return frame


def load_scoring_frame(con, as_of_date: dt.date) -> pd.DataFrame:
    """The `marts.ml_features` rows of one day (the run's as-of date is always on the grid),
    without dormant accounts: a dormant account is never scored.

    Raises:
        ValueError: the mart has no rows for that day (the marts were built as of another day).
    """
    frame = con.execute(
        "select * from marts.ml_features where as_of_date = ? order by account_id", [as_of_date]
    ).df()
    if frame.empty:
        raise ValueError(
            f"marts.ml_features has no rows for {as_of_date}: it holds the Mondays and the "
            "as-of date of the last marts run; build the marts as of that day first."
        )
    if "is_dormant" in frame.columns:
        frame = frame[~frame["is_dormant"].fillna(False).astype(bool)].reset_index(drop=True)
    return frame


def score_frame(
    frame: pd.DataFrame,
    champion: ChampionModel,
    model_name: str,
    as_of_date: dt.date,
    config: ScoreConfig | None = None,
    scored_at: dt.datetime | None = None,
) -> pd.DataFrame:
    """Rows for `ml.account_scores`: probability, percentile, band and the top-3 drivers.

    Drivers are LightGBM `pred_contrib` values in log-odds of the uncalibrated score: the
    three largest by absolute size, with sign (positive pushes the probability up).
    `drivers_json` lists every feature's contribution and value plus `base_value` and
    `raw_score`, so base_value + sum(contributions) == raw_score.
    """
    config = config or ScoreConfig()
    scored_at = scored_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    day = frame[pd.to_datetime(frame["as_of_date"]).dt.date == as_of_date]
    if day.empty:
        raise ValueError(f"The scoring frame has no rows for as_of_date {as_of_date}.")
    if day["account_id"].duplicated().any():
        raise ValueError(f"The scoring frame has duplicate account_id rows for {as_of_date}.")
    day = day.reset_index(drop=True)
    model = champion.model
    contributions = model.contributions(day)
    base = contributions.pop("base_value").to_numpy()
    contrib = contributions.to_numpy()
    raw = base + contrib.sum(axis=1)
    probability = model.calibrator.transform(raw)
    values = feature_matrix(day, model.features).to_numpy()
    features = np.array(model.features)
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")

    out = pd.DataFrame(
        {
            "account_id": day["account_id"].astype(str),
            "as_of_date": as_of_date,
            "model_name": model_name,
            "model_version": str(champion.version),
            "mlflow_run_id": champion.run_id,
            "probability": probability,
            # Same convention as SQL percent_rank(): 0 = lowest of the day, 100 = highest.
            "percentile": pd.Series(probability)
            .rank(method="min")
            .sub(1)
            .div(max(len(day) - 1, 1))
            .mul(100),
            "band": BANDS[
                np.searchsorted(np.asarray(config.band_thresholds), probability, "right")
            ],
        }
    )
    rows = np.arange(len(day))
    for k in range(min(3, len(features))):
        idx = order[:, k]
        out[f"driver_{k + 1}"] = features[idx]
        out[f"driver_{k + 1}_contribution"] = contrib[rows, idx]
    for k in range(len(features), 3):
        out[f"driver_{k + 1}"] = None
        out[f"driver_{k + 1}_contribution"] = np.nan
    out["drivers_json"] = [
        json.dumps(
            {
                "base_value": float(base[i]),
                "raw_score": float(raw[i]),
                "drivers": [
                    {
                        "feature": str(features[j]),
                        "contribution": float(contrib[i, j]),
                        "value": None if np.isnan(values[i, j]) else float(values[i, j]),
                    }
                    for j in order[i]
                ],
            }
        )
        for i in rows
    ]
    out["scored_at"] = pd.Timestamp(scored_at)
    return out[SCORE_COLUMNS]


def ensure_schema(con) -> None:
    """Create `ml.account_scores` if it does not exist."""
    con.execute(DDL)


def write_scores(con, scores: pd.DataFrame) -> int:
    """Replace the rows of every (as_of_date, model_name) in `scores`, in one transaction.

    Re-running a day with the same model gives the same table. Returns rows written.
    """
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"Scores lack columns {missing}; build them with score_frame().")
    ensure_schema(con)
    columns = ", ".join(SCORE_COLUMNS)
    con.register("_ml_scores_in", scores[SCORE_COLUMNS])
    try:
        con.execute("begin transaction")
        try:
            con.execute(
                """
                delete from ml.account_scores s
                using (select distinct as_of_date::date as d, model_name as m from _ml_scores_in) k
                where s.as_of_date = k.d and s.model_name = k.m
                """
            )
            con.execute(
                f"insert into ml.account_scores ({columns}) select {columns} from _ml_scores_in"
            )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    finally:
        con.unregister("_ml_scores_in")
    return len(scores)
