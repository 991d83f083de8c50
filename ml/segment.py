"""Engagement segments: KMeans on scaled engagement features, named from the cluster centres."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ml.config import SegmentConfig

DDL = """
create schema if not exists ml;
create table if not exists ml.segments (
    account_id varchar not null,
    as_of_date date not null,
    segment_id integer not null,
    segment_name varchar not null,
    primary key (account_id, as_of_date)
);
"""

LEVELS = ["Dormant", "Light", "Steady", "Engaged", "Power"]


def _level_words(k: int) -> list[str]:
    # Spread the level words over k clusters ordered from least to most engaged.
    idx = np.round(np.linspace(0, len(LEVELS) - 1, k)).astype(int)
    return [LEVELS[i] for i in idx]


def _label(feature: str) -> str:
    return feature.replace("_28d", " (28d)").replace("_", " ")


def segment_accounts(frame: pd.DataFrame, config: SegmentConfig | None = None) -> pd.DataFrame:
    """One row per account: `account_id, segment_id, segment_name`.

    Counts are log-scaled then standardised, so one huge account does not make its own cluster.
    Segment ids are ordered by overall engagement (0 = least engaged), so they keep a meaning
    from one day to the next; each name says the level and the feature that most sets the
    cluster apart, e.g. "Power: high seat utilisation".
    """
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    config = config or SegmentConfig()
    features = [f for f in config.features if f in frame.columns]
    if len(features) < 2:
        raise ValueError(
            f"Segmentation needs at least two of {list(config.features)}; the frame has {features}."
        )
    if frame["account_id"].duplicated().any():
        raise ValueError("Segmentation expects one row per account (one as_of_date).")
    k = min(config.n_segments, len(frame))
    if k < 2:
        raise ValueError(f"Segmentation needs at least 2 accounts, got {len(frame)}.")
    x = frame[features].apply(pd.to_numeric, errors="coerce").astype("float64").fillna(0.0)
    x = np.sign(x) * np.log1p(x.abs())
    scaled = StandardScaler().fit_transform(x)
    km = KMeans(n_clusters=k, random_state=config.seed, n_init=10).fit(scaled)
    centres = pd.DataFrame(km.cluster_centers_, columns=features)
    order = centres.mean(axis=1).sort_values().index.to_list()
    rank = {cluster: i for i, cluster in enumerate(order)}
    words = _level_words(k)
    names: dict[int, str] = {}
    for cluster in order:
        centre = centres.loc[cluster]
        top = centre.abs().idxmax()
        direction = "high" if centre[top] > 0 else "low"
        name = f"{words[rank[cluster]]}: {direction} {_label(top)}"
        if name in names.values():
            name = f"{name} ({rank[cluster] + 1})"
        names[cluster] = name
    labels = km.labels_
    return pd.DataFrame(
        {
            "account_id": frame["account_id"].astype(str).to_numpy(),
            "segment_id": [rank[c] for c in labels],
            "segment_name": [names[c] for c in labels],
        }
    )


def write_segments(con, as_of_date: dt.date, segments: pd.DataFrame) -> int:
    """Replace the segments of `as_of_date` in one transaction (idempotent)."""
    con.execute(DDL)
    con.register("_ml_segments_in", segments)
    try:
        con.execute("begin transaction")
        try:
            con.execute("delete from ml.segments where as_of_date = ?", [as_of_date])
            con.execute(
                "insert into ml.segments select account_id, ?::date, segment_id, segment_name "
                "from _ml_segments_in",
                [as_of_date],
            )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    finally:
        con.unregister("_ml_segments_in")
    return len(segments)
