"""Which columns the models learn from, and the real outcome dates their labels stand for."""

from __future__ import annotations

import pandas as pd

from warehouse.catalog import table_exists

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


def outcome_dates(con, label_source: str) -> pd.DataFrame | None:
    """`account_id, event_date` of the real outcomes a label stands for, for lead times.

    outcomes: each churned outcome's effective date; expansion: each expanded outcome's;
    inactivity: the first silent day of each dormancy (`marts.account_dormancy`). None when the
    warehouse has no such table (then no lead time is reported, rather than a made-up one).
    """
    if label_source == "inactivity":
        schema, table = "marts", "account_dormancy"
        sql = "select account_id, inactive_since_date as event_date from marts.account_dormancy"
    else:
        schema, table = "staging", "stg_raw__outcomes"
        outcome = "expanded" if label_source == "expansion" else "churned"
        sql = (
            "select account_id, effective_date as event_date from staging.stg_raw__outcomes "
            f"where outcome = '{outcome}'"
        )
    if not table_exists(con, schema, table):
        return None
    frame = con.execute(sql).df()
    frame["event_date"] = pd.to_datetime(frame["event_date"])
    return frame
