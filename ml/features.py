"""Which columns the models learn from, and churn labels derived from inactivity."""

from __future__ import annotations

import pandas as pd

KEYS = ("account_id", "as_of_date")
# Never features: identifiers, labels, and the hand-built health score (it is derived from the
# same features and would hide which raw signal drives the model).
EXCLUDED_PREFIXES = ("label_", "score_", "is_")
EXCLUDED_COLUMNS = {"health_score", "account_id", "as_of_date"}


def select_feature_columns(
    frame: pd.DataFrame, explicit: tuple[str, ...] | None = None
) -> list[str]:
    """The feature list: `explicit` if given (checked), else every numeric candidate, sorted.

    Raises:
        ValueError: an explicit feature is missing from the frame or is not numeric.
    """
    if explicit is not None:
        missing = [c for c in explicit if c not in frame.columns]
        if missing:
            raise ValueError(
                f"Feature columns {missing} are not in the feature frame; "
                "update the feature list or rebuild marts.ml_features."
            )
        not_numeric = [c for c in explicit if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
        if not_numeric:
            raise ValueError(f"Feature columns {not_numeric} are not numeric.")
        return list(explicit)
    features = [
        c
        for c in frame.columns
        if c not in EXCLUDED_COLUMNS
        and not c.startswith(EXCLUDED_PREFIXES)
        and pd.api.types.is_numeric_dtype(frame[c].dtype)
        and not pd.api.types.is_bool_dtype(frame[c].dtype)
    ]
    if not features:
        raise ValueError("The feature frame has no numeric feature columns.")
    return sorted(features)


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The features as float64 (LightGBM treats NaN as missing, so NULLs stay NaN)."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(
            f"The frame lacks model features {missing}: the model was trained on a different "
            "feature set than the marts now provide; retrain it."
        )
    return frame[features].apply(pd.to_numeric, errors="coerce").astype("float64")


def inactivity_churn_dates(daily: pd.DataFrame, inactive_days: int) -> pd.DataFrame:
    """Per account, the day it churned by silence: the day after its last activity before a gap.

    `daily` has `account_id, activity_date, is_active` (one row per account and landed day). An
    account churns on the first day of a run of at least `inactive_days` days without activity
    that follows some activity. Accounts still in such a run at the end of the data count as
    churned only once the run has reached `inactive_days` days.
    """
    required = {"account_id", "activity_date", "is_active"}
    if not required <= set(daily.columns):
        raise ValueError(f"The daily activity frame needs columns {sorted(required)}")
    d = daily[["account_id", "activity_date", "is_active"]].copy()
    d["activity_date"] = pd.to_datetime(d["activity_date"])
    d = d.sort_values(["account_id", "activity_date"])
    active = d[d["is_active"].astype(bool)]
    last_day = d.groupby("account_id")["activity_date"].max().rename("last_day")
    # Gap after each active day: days until the next active day (or the end of the data).
    active = active.assign(
        next_active=active.groupby("account_id")["activity_date"].shift(-1)
    ).join(last_day, on="account_id")
    gap_end = active["next_active"].fillna(active["last_day"] + pd.Timedelta(days=1))
    active = active.assign(gap_days=(gap_end - active["activity_date"]).dt.days - 1)
    churned = active[active["gap_days"] >= inactive_days]
    first = churned.groupby("account_id")["activity_date"].min()
    return (first + pd.Timedelta(days=1)).rename("churn_date").reset_index()


def inactivity_labels(
    features: pd.DataFrame,
    daily: pd.DataFrame,
    inactive_days: int,
    horizon_days: int,
) -> pd.DataFrame:
    """Replace `label_churn` / `is_label_observable` with labels defined by inactivity.

    A row is positive when the account's inactivity churn date falls in
    (as_of_date, as_of_date + horizon]. Rows on or after the churn date are dropped (the account
    is already gone). A row is observable only when the data reaches horizon + inactive_days past
    it, because a silence is only known to be churn after it has lasted `inactive_days`.
    """
    churn = inactivity_churn_dates(daily, inactive_days)
    last_day = pd.to_datetime(daily["activity_date"]).max()
    out = features.drop(columns=["label_churn", "is_label_observable"], errors="ignore").copy()
    as_of = pd.to_datetime(out["as_of_date"])
    churn_date = out[["account_id"]].merge(churn, on="account_id", how="left")["churn_date"]
    churn_date.index = out.index
    horizon = pd.Timedelta(days=horizon_days)
    keep = churn_date.isna() | (as_of < churn_date)
    out["label_churn"] = ((churn_date > as_of) & (churn_date <= as_of + horizon)).astype("int8")
    out["is_label_observable"] = as_of + horizon + pd.Timedelta(days=inactive_days) <= last_day
    return out[keep].reset_index(drop=True)


def event_dates_from_labels(frame: pd.DataFrame, horizon_days: int, label: str) -> pd.DataFrame:
    """Estimate event dates (churn, expansion) from a weekly label grid.

    Each run of consecutive positive rows for an account is one event; its first row is the
    first as-of date that sees the event within the horizon, so the event falls within one grid
    step before first_positive + horizon. The estimate is that upper bound (at most one grid
    step late). Used for lead-time reporting when no exact outcome dates are passed in.
    """
    d = frame[["account_id", "as_of_date", label]].copy()
    d["as_of_date"] = pd.to_datetime(d["as_of_date"])
    d = d.sort_values(["account_id", "as_of_date"])
    positive = d[label].fillna(0).astype(int) == 1
    previous = positive.groupby(d["account_id"]).shift(1, fill_value=False)
    starts = d[positive & ~previous.astype(bool)]
    return pd.DataFrame(
        {
            "account_id": starts["account_id"].to_numpy(),
            "event_date": (starts["as_of_date"] + pd.Timedelta(days=horizon_days)).to_numpy(),
        }
    )
