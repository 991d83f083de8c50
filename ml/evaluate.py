"""Test-period metrics with account-level bootstrap intervals, lead times, strata and plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

METRICS = ("roc_auc", "pr_auc", "lift_at_top", "precision_at_top", "recall_at_top")


def ranking_metrics(
    labels: np.ndarray, scores: np.ndarray, top_fraction: float
) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, and precision / recall / lift among the top `top_fraction`.

    Brier is only meaningful for probabilities; callers of a non-probability score drop it.
    """
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype="float64")
    if labels.min() == labels.max():
        raise ValueError("The holdout has only one class; metrics are undefined.")
    n_top = max(1, int(round(len(scores) * top_fraction)))
    # Stable sort on the negated score: ties keep row order, so results are reproducible.
    top = np.argsort(-scores, kind="stable")[:n_top]
    base_rate = labels.mean()
    precision = labels[top].mean()
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "brier": float(brier_score_loss(labels, np.clip(scores, 0, 1))),
        "precision_at_top": float(precision),
        "recall_at_top": float(labels[top].sum() / labels.sum()),
        "lift_at_top": float(precision / base_rate),
        "base_rate": float(base_rate),
    }


def weighted_metrics(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, top_fraction: float
) -> dict[str, np.ndarray]:
    """The METRICS for each row of `weights` (B x n row weights, e.g. bootstrap multiplicities).

    Ties share their credit (ROC AUC counts a tied pair as half; PR AUC steps once per distinct
    score, as scikit-learn does). With all weights 1 the results equal `ranking_metrics`'.
    """
    labels = np.asarray(labels, dtype="float64")
    scores = np.asarray(scores, dtype="float64")
    weights = np.atleast_2d(np.asarray(weights, dtype="float64"))
    order = np.argsort(-scores, kind="stable")
    s, y, w = scores[order], labels[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(w * y, starts, axis=1)
    neg = np.add.reduceat(w * (1 - y), starts, axis=1)
    p, n = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum_neg = np.cumsum(neg, axis=1)
        roc = (pos * (n[:, None] - cum_neg + 0.5 * neg)).sum(axis=1) / (p * n)
        tp, fp = np.cumsum(pos, axis=1), cum_neg
        ap = (pos / p[:, None] * tp / (tp + fp)).sum(axis=1)
        total = w.sum(axis=1)
        cum_w = np.cumsum(w, axis=1)
        # rows that start before the cut: the first row always counts
        top = (cum_w - w) < (top_fraction * total)[:, None]
        top_w = (w * top).sum(axis=1)
        top_pos = (w * y * top).sum(axis=1)
        precision = top_pos / top_w
        base = p / total
        return {
            "roc_auc": roc,
            "pr_auc": ap,
            "lift_at_top": precision / base,
            "precision_at_top": precision,
            "recall_at_top": top_pos / p,
        }


def bootstrap_weights(
    accounts: np.ndarray, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row weights of an account-level bootstrap: (point weights 1 x n, samples x n).

    Each resample draws as many accounts as there are, with replacement; an account's rows all
    get its multiplicity, so rows of one account are never treated as independent.
    """
    codes, uniques = pd.factorize(pd.Series(accounts), sort=True)
    rng = np.random.default_rng(seed)
    k = len(uniques)
    draws = rng.integers(0, k, size=(samples, k))
    counts = np.stack([np.bincount(row, minlength=k) for row in draws]).astype("float64")
    return np.ones((1, len(codes))), counts[:, codes]


@dataclass
class Comparison:
    """Every scorer's test metrics with intervals, and the reference's paired differences."""

    reference: str
    names: list[str]
    point: dict[str, dict[str, float]]
    interval: dict[str, dict[str, tuple[float, float]]]
    # other -> metric -> (reference - other: point, low, high)
    difference: dict[str, dict[str, tuple[float, float, float]]]
    rows: int
    positives: int
    accounts: int
    positive_accounts: int
    samples: int
    confidence: float
    brier: float | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def best_other(self, metric: str, among: list[str] | None = None) -> str | None:
        """The scorer other than the reference with the best point estimate of `metric`."""
        names = [n for n in (among or self.names) if n != self.reference and n in self.point]
        return max(names, key=lambda n: self.point[n][metric]) if names else None

    def flat(self) -> dict[str, float]:
        """`<scorer>_<metric>`, `_lo` / `_hi`, and `diff_<other>_<metric>[_lo|_hi]` numbers."""
        out: dict[str, float] = {
            "test_rows": float(self.rows),
            "test_positives": float(self.positives),
            "test_accounts": float(self.accounts),
            "test_positive_accounts": float(self.positive_accounts),
        }
        for name in self.names:
            for metric, value in self.point[name].items():
                lo, hi = self.interval[name][metric]
                out[f"{name}_{metric}"] = value
                out[f"{name}_{metric}_lo"] = lo
                out[f"{name}_{metric}_hi"] = hi
        for other, metrics in self.difference.items():
            for metric, (value, lo, hi) in metrics.items():
                out[f"diff_{other}_{metric}"] = value
                out[f"diff_{other}_{metric}_lo"] = lo
                out[f"diff_{other}_{metric}_hi"] = hi
        if self.brier is not None:
            out[f"{self.reference}_brier"] = self.brier
        return out


def compare(
    labels: np.ndarray,
    accounts: np.ndarray,
    scores: dict[str, np.ndarray],
    reference: str,
    top_fraction: float,
    samples: int,
    confidence: float,
    seed: int,
) -> Comparison:
    """Metrics of every scorer on the same rows, percentile intervals from one account-level
    bootstrap, and paired differences reference - other on the same resamples.

    Raises:
        ValueError: the rows hold only one class.
    """
    labels = np.asarray(labels, dtype=int)
    if labels.min() == labels.max():
        raise ValueError("The test period has only one class; metrics are undefined.")
    point_w, boot_w = bootstrap_weights(np.asarray(accounts), samples, seed)
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    point: dict[str, dict[str, float]] = {}
    interval: dict[str, dict[str, tuple[float, float]]] = {}
    draws: dict[str, dict[str, np.ndarray]] = {}
    for name, s in scores.items():
        p = weighted_metrics(labels, s, point_w, top_fraction)
        b = weighted_metrics(labels, s, boot_w, top_fraction)
        point[name] = {m: float(p[m][0]) for m in METRICS}
        draws[name] = b
        interval[name] = {
            m: (float(np.nanquantile(b[m], lo_q)), float(np.nanquantile(b[m], hi_q)))
            for m in METRICS
        }
    difference = {}
    for name in scores:
        if name == reference:
            continue
        difference[name] = {}
        for m in METRICS:
            d = draws[reference][m] - draws[name][m]
            difference[name][m] = (
                point[reference][m] - point[name][m],
                float(np.nanquantile(d, lo_q)),
                float(np.nanquantile(d, hi_q)),
            )
    positive = labels == 1
    ref = np.asarray(scores[reference], dtype="float64")
    brier = float(brier_score_loss(labels, ref)) if ((ref >= 0) & (ref <= 1)).all() else None
    return Comparison(
        reference=reference,
        names=list(scores),
        point=point,
        interval=interval,
        difference=difference,
        rows=len(labels),
        positives=int(positive.sum()),
        accounts=int(pd.Series(accounts).nunique()),
        positive_accounts=int(pd.Series(accounts)[positive].nunique()),
        samples=samples,
        confidence=confidence,
        brier=brier,
    )


def alert_threshold(scores: np.ndarray, top_fraction: float) -> float:
    """The lowest score whose rows (score >= it) are at most `top_fraction` of `scores` (chosen
    on validation, used on test); when the highest score alone is shared by more rows, that
    score. A tie never lets a coarse score (a 0/1 flag) alert everyone.
    """
    s = np.asarray(scores, dtype="float64")
    values, counts = np.unique(s[~np.isnan(s)], return_counts=True)
    values, share = values[::-1], np.cumsum(counts[::-1]) / max(len(s), 1)
    within = np.flatnonzero(share <= top_fraction + 1e-12)
    return float(values[within[-1]] if len(within) else values[0])


def lead_times(
    rows: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    events: pd.DataFrame,
    before_days: int,
    after_days: int,
    events_until_days: int,
) -> pd.DataFrame:
    """Days from the first alert to each real outcome date (negative = the alert came after).

    `rows` (account_id, as_of_date) are the scored rows, `events` (account_id, event_date) the
    real outcome dates (a churn's effective date, or the first silent day of an inactivity
    churn). An event counts when it falls after the first scored day and at most
    events_until_days after the last; its alert is the first row with score >= threshold from
    before_days before the event to after_days after it (0: strictly before; an inactivity churn
    is still worth a call until the account is declared dormant). Never alerted: lead_days NULL.
    """
    scored = pd.DataFrame(
        {
            "account_id": rows["account_id"].to_numpy(),
            "as_of_date": pd.to_datetime(rows["as_of_date"]).to_numpy(),
            "score": np.asarray(scores, dtype="float64"),
        }
    )
    ev = events[["account_id", "event_date"]].copy()
    ev["event_date"] = pd.to_datetime(ev["event_date"])
    start, end = scored["as_of_date"].min(), scored["as_of_date"].max()
    ev = ev[
        (ev["event_date"] > start)
        & (ev["event_date"] <= end + pd.Timedelta(days=events_until_days))
        & ev["account_id"].isin(scored["account_id"])
    ].drop_duplicates()
    merged = scored[scored["score"] >= threshold].merge(ev, on="account_id")
    window = merged[
        (merged["as_of_date"] >= merged["event_date"] - pd.Timedelta(days=before_days))
        & (merged["as_of_date"] < merged["event_date"] + pd.Timedelta(days=after_days))
    ]
    first = (
        window.groupby(["account_id", "event_date"])["as_of_date"]
        .min()
        .rename("first_alert_date")
        .reset_index()
    )
    out = ev.merge(first, on=["account_id", "event_date"], how="left")
    out["lead_days"] = (out["event_date"] - out["first_alert_date"]).dt.days
    return out.sort_values(["event_date", "account_id"]).reset_index(drop=True)


def lead_time_summary(leads: pd.DataFrame, ahead_days: int) -> dict[str, float]:
    """Events, share alerted at all / before the outcome date / >= ahead_days ahead, quartiles."""
    n = len(leads)
    alerted = leads["lead_days"].dropna()
    nan = float("nan")
    return {
        "lead_events": float(n),
        "lead_alerted_share": float(len(alerted) / n) if n else nan,
        "lead_before_share": float((alerted > 0).sum() / n) if n else nan,
        f"lead_ge_{ahead_days}d_share": float((alerted >= ahead_days).sum() / n) if n else nan,
        "lead_days_p25": float(alerted.quantile(0.25)) if len(alerted) else nan,
        "lead_days_median": float(alerted.median()) if len(alerted) else nan,
        "lead_days_p75": float(alerted.quantile(0.75)) if len(alerted) else nan,
    }


def strata(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Named boolean masks of the test rows: renewal window (where contracts exist) and size."""
    out: dict[str, pd.Series] = {}
    if "days_to_renewal" in frame.columns and frame["days_to_renewal"].notna().any():
        days = frame["days_to_renewal"].astype("float64")
        out["renewal within 90 days"] = (days >= 0) & (days <= 90)
        out["renewal later"] = days > 90
        out["no contract renewal"] = days.isna() | (days < 0)
    for column, label in (("arr", "ARR"), ("seats", "seats"), ("active_users_365d", "users")):
        if column in frame.columns:
            v = frame[column].astype("float64")
            if v.notna().sum() > 0 and v.nunique() > 2:
                lo, hi = v.quantile(1 / 3), v.quantile(2 / 3)
                if lo < hi:
                    out[f"small ({label} <= {lo:g})"] = v <= lo
                    out[f"mid ({label})"] = (v > lo) & (v <= hi)
                    out[f"large ({label} > {hi:g})"] = v > hi
                    break
    return {k: m.fillna(False).astype(bool) for k, m in out.items() if m.any()}


def strata_table(
    frame: pd.DataFrame, labels: np.ndarray, scores: dict[str, np.ndarray], top_fraction: float
) -> pd.DataFrame:
    """Per stratum: rows, positives, and each scorer's ROC AUC and PR AUC (NaN with one class)."""
    rows = []
    masks = {"all": pd.Series(True, index=frame.index), **strata(frame)}
    labels = np.asarray(labels, dtype=int)
    for name, mask in masks.items():
        m = mask.to_numpy()
        y = labels[m]
        row: dict[str, object] = {"stratum": name, "rows": int(m.sum()), "positives": int(y.sum())}
        for scorer, s in scores.items():
            if y.min(initial=0) == y.max(initial=0):
                row[f"{scorer}_roc_auc"] = row[f"{scorer}_pr_auc"] = float("nan")
                continue
            r = ranking_metrics(y, np.asarray(s)[m], top_fraction)
            row[f"{scorer}_roc_auc"] = r["roc_auc"]
            row[f"{scorer}_pr_auc"] = r["pr_auc"]
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- plots


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # headless: runs inside Dagster workers and CI
    import matplotlib.pyplot as plt

    return plt


def calibration_plot(labels: np.ndarray, probabilities: np.ndarray, path: Path) -> Path:
    from sklearn.calibration import calibration_curve

    plt = _figure()
    fraction, mean_pred = calibration_curve(labels, probabilities, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.plot(mean_pred, fraction, marker="o", label="model")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title("Calibration on the test period")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def lift_plot(labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """Cumulative gains: share of positives found vs share of test rows contacted, per scorer."""
    plt = _figure()
    labels = np.asarray(labels, dtype=int)
    fig, ax = plt.subplots(figsize=(6, 5))
    share = np.arange(1, len(labels) + 1) / len(labels)
    for name, s in scores.items():
        order = np.argsort(-np.asarray(s, dtype="float64"), kind="stable")
        gains = np.cumsum(labels[order]) / max(labels.sum(), 1)
        ax.plot(share, gains, label=name, linewidth=2 if name == "model" else 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set_xlabel("share of rows contacted (highest score first)")
    ax.set_ylabel("share of positives found")
    ax.set_title("Cumulative gains on the test period")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def importance_frame(booster, features: list[str]) -> pd.DataFrame:
    """Gain and split importance per feature, largest gain first."""
    return (
        pd.DataFrame(
            {
                "feature": features,
                "gain": booster.feature_importance(importance_type="gain"),
                "splits": booster.feature_importance(importance_type="split"),
            }
        )
        .sort_values("gain", ascending=False)
        .reset_index(drop=True)
    )


def importance_plot(importance: pd.DataFrame, path: Path, top: int = 20) -> Path:
    plt = _figure()
    data = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, max(3, 0.3 * len(data))))
    ax.barh(data["feature"], data["gain"])
    ax.set_xlabel("total gain")
    ax.set_title("Feature importance")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def contribution_summary_plot(
    contributions: pd.DataFrame, values: pd.DataFrame, path: Path, top: int = 15
) -> Path:
    """SHAP-style beeswarm: a dot per row at its log-odds contribution, coloured by value."""
    plt = _figure()
    contrib = contributions.drop(columns=["base_value"])
    order = contrib.abs().mean().sort_values(ascending=False).index[:top][::-1]
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.35 * len(order))))
    for i, feature in enumerate(order):
        v = values[feature].astype("float64")
        if v.notna().any():
            lo, hi = np.nanpercentile(v, 5), np.nanpercentile(v, 95)
        else:
            lo, hi = 0.0, 1.0
        colour = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1).fillna(0.5)
        jitter = rng.uniform(-0.3, 0.3, len(v))
        ax.scatter(contrib[feature], i + jitter, c=colour, cmap="coolwarm", s=6, alpha=0.6)
    ax.set_yticks(range(len(order)), order)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("contribution to log-odds (blue = low value, red = high)")
    ax.set_title("Per-row feature contributions (test period)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def lead_time_plot(leads: pd.DataFrame, path: Path, ahead_days: int) -> Path:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    alerted = leads["lead_days"].dropna()
    if len(alerted):
        ax.hist(alerted, bins=range(int(alerted.min()) - 7, int(alerted.max()) + 8, 7))
    ax.axvline(0, color="black", linewidth=0.8, label="outcome date")
    ax.axvline(ahead_days, color="red", linestyle="--", label=f"{ahead_days} days ahead")
    ax.set_xlabel("days from the first alert to the real outcome date")
    ax.set_ylabel("accounts")
    ax.set_title(f"Lead time ({len(alerted)} of {len(leads)} outcomes alerted)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
