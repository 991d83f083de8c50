"""Model drift: population stability index (PSI) of scores and features against a reference."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from warehouse.catalog import table_columns

# Usual reading of PSI: < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a shift worth retraining.
PSI_WARN = 0.25
_EPS = 1e-4
_NOT_FEATURES = {"account_id", "as_of_date", "health_score"}


def psi(reference, current, bins: int = 10) -> float:
    """PSI of `current` against `reference`, over the reference's quantile bins.

    Values outside the reference range fall into the outer bins; empty bins get a small floor so
    the log stays finite. NaNs are dropped; raises ValueError when either side has no values.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref.size == 0 or cur.size == 0:
        raise ValueError(
            f"PSI needs values on both sides (reference {ref.size}, current {cur.size})"
        )
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    # Counts zero-valued or constant features sensibly: bins collapse to the distinct cut points.
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    ref_p = np.maximum(ref_share / ref.size, _EPS)
    cur_p = np.maximum(cur_share / cur.size, _EPS)
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


@dataclass
class DriftReport:
    """PSI per model score and per feature for one week against the reference period."""

    as_of: dt.date
    reference: str
    current: str
    score_psi: dict[str, float] = field(default_factory=dict)
    feature_psi: dict[str, float] = field(default_factory=dict)
    threshold: float = PSI_WARN

    @property
    def drifted(self) -> dict[str, float]:
        """Everything past the threshold, scores first, largest shift first."""
        items = [(f"score:{k}", v) for k, v in self.score_psi.items()]
        items += [(f"feature:{k}", v) for k, v in self.feature_psi.items()]
        return dict(sorted((kv for kv in items if kv[1] > self.threshold), key=lambda kv: -kv[1]))

    @property
    def should_retrain(self) -> bool:
        return bool(self.drifted)

    def summary(self) -> str:
        if not self.should_retrain:
            return f"No drift: every PSI <= {self.threshold} ({self.current} vs {self.reference})."
        worst = ", ".join(f"{k} {v:.2f}" for k, v in list(self.drifted.items())[:5])
        return (
            f"Retrain the models: {len(self.drifted)} distribution(s) shifted past PSI "
            f"{self.threshold} ({self.current} vs {self.reference}): {worst}."
        )


def _columns(con, table: str) -> list[str]:
    return [
        c
        for c, t in table_columns(con, *table.split(".")).items()
        if t in ("DOUBLE", "FLOAT", "INTEGER", "BIGINT", "DECIMAL", "HUGEINT")
        or t.startswith("DECIMAL")
    ]


def drift_report(
    con, as_of: dt.date, window_days: int = 7, threshold: float = PSI_WARN
) -> DriftReport:
    """Compare the week ending on `as_of` with the training period.

    Features: `marts.ml_features` rows of the week against the labelled rows (the rows training
    draws from: `is_label_observable`). Scores: `ml.account_scores` of the week against the first
    `window_days` days the same model version scored (scores of the training rows are not
    stored, so the version's first week stands in for them).
    """
    start = as_of - dt.timedelta(days=window_days - 1)
    report = DriftReport(
        as_of=as_of,
        reference="labelled training-period rows / the model version's first week",
        current=f"{start}..{as_of}",
        threshold=threshold,
    )
    features = [
        c
        for c in _columns(con, "marts.ml_features")
        # missing_days_* measure landing, not customers: the freshness gate owns that.
        if c not in _NOT_FEATURES and not c.startswith(("label_", "is_", "score_", "missing_days_"))
    ]
    if features:
        cols = ", ".join(f"cast({c} as double) as {c}" for c in features)
        ref = con.execute(
            f"select {cols} from marts.ml_features where is_label_observable and as_of_date < ?",
            [start],
        ).fetchnumpy()
        cur = con.execute(
            f"select {cols} from marts.ml_features where as_of_date between ? and ?",
            [start, as_of],
        ).fetchnumpy()
        for c in features:
            try:
                report.feature_psi[c] = round(psi(ref[c], cur[c]), 4)
            except ValueError:
                continue  # a feature with no values on one side says nothing about drift
    rows = con.execute(
        """
        with versions as (
            select model_name, max_by(model_version, as_of_date) as model_version
            from ml.account_scores where as_of_date <= $as_of group by model_name
        ), firsts as (
            select s.model_name, min(s.as_of_date) as first_day
            from ml.account_scores s join versions v using (model_name, model_version)
            group by s.model_name
        )
        select s.model_name,
               s.as_of_date < f.first_day + to_days($w) as is_reference,
               s.as_of_date between $start and $as_of as is_current,
               s.probability
        from ml.account_scores s
        join versions v using (model_name, model_version)
        join firsts f using (model_name)
        """,
        {"as_of": as_of, "start": start, "w": window_days},
    ).fetchall()
    for model in sorted({r[0] for r in rows}):
        ref_p = [r[3] for r in rows if r[0] == model and r[1] and not r[2]]
        cur_p = [r[3] for r in rows if r[0] == model and r[2]]
        if ref_p and cur_p:
            report.score_psi[model] = round(psi(ref_p, cur_p), 4)
    return report
