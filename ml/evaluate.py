"""Holdout metrics, the heuristic baseline, alert lead time, and the evaluation plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ml.config import TrainConfig


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


def baseline_score(frame: pd.DataFrame, config: TrainConfig) -> np.ndarray:
    """The rule a CSM team might use without a model, as a ranking score.

    Churn: 28-day activity fell by more than `baseline_drop` and seat utilisation is below
    `baseline_utilisation`. Expansion (negative drop = growth): activity grew by more than
    -`baseline_drop` and utilisation is above `baseline_utilisation`. Rows meeting the rule
    rank first; within each group the size of the change and the utilisation gap break ties.
    """
    current = frame[f"{config.baseline_activity}_28d"].astype("float64")
    previous = frame[f"{config.baseline_activity}_prev_28d"].astype("float64")
    utilisation = frame["seat_utilisation"].astype("float64").clip(0, 2).fillna(0)
    change = ((current - previous) / previous.where(previous > 0)).fillna(0).clip(-1, 3)
    if config.model_name == "expansion":
        growth = change
        rule = (growth > -config.baseline_drop) & (utilisation > config.baseline_utilisation)
        severity = growth.clip(0, 3) / 3 + utilisation.clip(0, 1)
    else:
        drop = -change
        rule = (drop > config.baseline_drop) & (utilisation < config.baseline_utilisation)
        severity = drop.clip(0, 1) + (1 - utilisation.clip(0, 1))
    return (2.0 * rule + severity / 2.0).to_numpy()


def lead_times(
    test: pd.DataFrame,
    probabilities: np.ndarray,
    event_dates: pd.DataFrame,
    threshold: float,
    window_days: int,
) -> pd.DataFrame:
    """For each account with an event in the test period, days between first alert and the event.

    An alert is the first test-period as-of date within `window_days` before the event whose
    probability reached `threshold`. Accounts never alerted have a missing lead time.
    """
    scored = test[["account_id", "as_of_date"]].assign(
        as_of_date=pd.to_datetime(test["as_of_date"]), probability=probabilities
    )
    events = event_dates.assign(event_date=pd.to_datetime(event_dates["event_date"]))
    start = scored["as_of_date"].min()
    events = events[(events["event_date"] > start + pd.Timedelta(days=1))]
    merged = scored.merge(events, on="account_id")
    window = merged[
        (merged["as_of_date"] < merged["event_date"])
        & (merged["as_of_date"] >= merged["event_date"] - pd.Timedelta(days=window_days))
        & (merged["probability"] >= threshold)
    ]
    first_alert = (
        window.groupby(["account_id", "event_date"])["as_of_date"]
        .min()
        .rename("first_alert_date")
        .reset_index()
    )
    out = events[events["account_id"].isin(scored["account_id"])]
    out = out.merge(first_alert, on=["account_id", "event_date"], how="left")
    out["lead_days"] = (out["event_date"] - out["first_alert_date"]).dt.days
    return out.reset_index(drop=True)


def lead_time_summary(leads: pd.DataFrame, ahead_days: int) -> dict[str, float]:
    """Distribution of lead days and the share of events alerted at least `ahead_days` ahead."""
    n = len(leads)
    alerted = leads["lead_days"].dropna()
    return {
        "lead_events": float(n),
        "lead_alerted_share": float(len(alerted) / n) if n else float("nan"),
        "lead_days_median": float(alerted.median()) if len(alerted) else float("nan"),
        "lead_days_p25": float(alerted.quantile(0.25)) if len(alerted) else float("nan"),
        "lead_days_p75": float(alerted.quantile(0.75)) if len(alerted) else float("nan"),
        f"lead_share_ge_{ahead_days}d": float((alerted >= ahead_days).sum() / n)
        if n
        else float("nan"),
    }


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
        lo, hi = np.nanpercentile(v, 5), np.nanpercentile(v, 95)
        colour = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
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
    ax.hist(alerted, bins=range(0, int(alerted.max() if len(alerted) else 1) + 8, 7))
    ax.axvline(ahead_days, color="red", linestyle="--", label=f"{ahead_days} days")
    ax.set_xlabel("days between first alert and the event")
    ax.set_ylabel("accounts")
    ax.set_title(f"Lead time ({len(alerted)} of {len(leads)} events alerted)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
