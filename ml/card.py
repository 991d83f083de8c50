"""The model card of a training run: what it learned from, and how it did against baselines."""

from __future__ import annotations

import json
import math

from ml.train import MODEL, TrainResult

TITLES = {
    MODEL: "model (LightGBM, calibrated)",
    "champion": "current champion",
    "recency": "recency",
    "frequency": "frequency",
    "health_score": "health score",
    "calendar": "calendar",
    "bgnbd": "BG/NBD P(alive)",
    "bgnbd_expected": "BG/NBD expected activity",
}


def _ci(point: float, interval: tuple[float, float], digits: int = 3) -> str:
    if point != point:
        return "n/a"
    lo, hi = interval
    return f"{point:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _num(value: float, fmt: str = ".0f") -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:{fmt}}"
    )


def describe(result: TrainResult, scorer: str) -> str:
    if scorer == MODEL:
        return f"{len(result.model.features)} features"
    if scorer == "champion":
        return "the model now in use, on the same rows"
    return result.baselines.descriptions.get(scorer, "")


def metrics_table(result: TrainResult) -> str:
    """Markdown: every scorer's test metrics with intervals and its lead times."""
    c, cfg = result.comparison, result.config
    top = f"{cfg.top_fraction:.0%}"
    ahead = cfg.lead_time_days
    lines = [
        f"| scorer | what it ranks by | ROC AUC | PR AUC | lift @ {top} | outcomes alerted | "
        f"alerted before the outcome date | >= {ahead} days before | "
        "lead days p25 / median / p75 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in c.names:
        p, i = c.point[name], c.interval[name]
        lead = result.lead_summary(name)
        lead_cells = (
            [
                _num(100 * lead["lead_alerted_share"], ".0f") + " %",
                _num(100 * lead["lead_before_share"], ".0f") + " %",
                _num(100 * lead[f"lead_ge_{ahead}d_share"], ".0f") + " %",
                " / ".join(
                    _num(lead[k]) for k in ("lead_days_p25", "lead_days_median", "lead_days_p75")
                ),
            ]
            if lead and lead["lead_events"]
            else ["n/a"] * 4
        )
        lines.append(
            f"| {TITLES.get(name, name)} | {describe(result, name)} | "
            f"{_ci(p['roc_auc'], i['roc_auc'])} | {_ci(p['pr_auc'], i['pr_auc'])} | "
            f"{_ci(p['lift_at_top'], i['lift_at_top'], 2)} | " + " | ".join(lead_cells) + " |"
        )
    return "\n".join(lines)


def difference_table(result: TrainResult) -> str:
    """Markdown: model minus each other scorer, paired on the same bootstrap resamples."""
    c = result.comparison
    lines = [
        "| model minus | ROC AUC | PR AUC | lift |",
        "|---|---|---|---|",
    ]
    for name, diffs in c.difference.items():
        cells = [
            f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            for v, lo, hi in (diffs[m] for m in ("roc_auc", "pr_auc", "lift_at_top"))
        ]
        lines.append(f"| {TITLES.get(name, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def strata_table(result: TrainResult) -> str:
    frame = result.strata
    scorers = [MODEL, *(n for n in result.comparison.names if n != MODEL)]
    lines = [
        "| stratum | rows | positives | "
        + " | ".join(f"{TITLES.get(s, s)} ROC AUC" for s in scorers)
        + " |",
        "|---|---|---|" + "---|" * len(scorers),
    ]
    for row in frame.to_dict("records"):
        cells = [_num(row.get(f"{s}_roc_auc", float("nan")), ".3f") for s in scorers]
        lines.append(
            f"| {row['stratum']} | {row['rows']} | {row['positives']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def data_section(result: TrainResult) -> str:
    cfg, d = result.config, result.split.describe(result.config.label)
    return "\n".join(
        [
            f"- **Label**: `{cfg.label}` = {cfg.describe_label()}.",
            f"- **Population**: {cfg.describe_population()}; rows whose label window has not "
            "passed are not used. No row is kept or dropped because of its future.",
            f"- **Training window**: as-of dates {d['train_start']} .. {d['train_end']}: "
            f"{d['train_rows']:,} rows of {d['train_accounts']:,} accounts "
            f"({d['train_positives']:,} positive rows).",
            f"- **Validation** (early stopping, calibration, alert threshold): "
            f"{d['validation_accounts']:,} held-out accounts of the training window, their rows "
            f"of its last {cfg.validation_days} days ({d['validation_rows']:,} rows, "
            f"{d['validation_positives']:,} positive).",
            f"- **Embargo**: {d['embargo_days']} days (the label window) between the training "
            "window and the test period.",
            f"- **Test period**: as-of dates {d['test_start']} .. {d['test_end']}: "
            f"{d['test_rows']:,} rows of {d['test_accounts']:,} accounts, "
            f"{d['test_positive_accounts']:,} of them with a positive row.",
            f"- **Intervals**: {result.comparison.confidence:.0%} percentile intervals from "
            f"{result.comparison.samples} account-level bootstrap resamples of the test period "
            "(every row of a drawn account counts as often as the account is drawn).",
            f"- **Alerts** for lift and lead time: the top {cfg.top_fraction:.0%} of scores, "
            f"threshold chosen on validation (model: probability >= {result.alert_threshold:.3f}).",
        ]
    )


def model_card(result: TrainResult, registered: str = "", version: str = "") -> str:
    """The whole card as Markdown (logged with the run; plots are files beside it)."""
    top = result.importance.head(15)
    importance = "\n".join(
        f"| {r.feature} | {r.gain:,.0f} | {r.splits} |" for r in top.itertuples()
    )
    notes = "".join(f"\n- {k}: {v}" for k, v in result.notes.items())
    title = f"{registered} v{version}" if version else result.config.model_name
    return f"""# Model card: {title}

## Data
{data_section(result)}

## Test period: model and baselines
{metrics_table(result)}

Lead time = days from the first alert to the real outcome date (a churn's effective date, or
the first silent day of an inactivity churn); negative = the alert came after it.

## Model minus each scorer (paired bootstrap)
{difference_table(result)}

## By stratum (ROC AUC)
{strata_table(result)}

## Features (top 15 by gain)
| feature | gain | splits |
|---|---|---|
{importance}

Features with no data in the training window (NULL throughout; a kind of data the warehouse
does not hold): {", ".join(result.empty_features) or "none"}.{notes}

Plots: `plots/calibration.png`, `plots/lift.png`, `plots/feature_importance.png`,
`plots/contribution_summary.png`, `plots/lead_time.png`.
"""


def card_json(result: TrainResult) -> str:
    """The card's numbers as JSON (split, metrics with intervals, leads, strata)."""
    c = result.comparison
    return json.dumps(
        {
            "label": result.config.label,
            "label_source": result.config.label_source,
            "population": result.config.describe_population(),
            "split": result.split.describe(result.config.label),
            "metrics": {n: {"point": c.point[n], "interval": c.interval[n]} for n in c.names},
            "difference": c.difference,
            "lead_times": {n: result.lead_summary(n) for n in result.leads},
            "best_baseline": result.best_baseline,
            "empty_features": result.empty_features,
        },
        indent=1,
        default=float,
    )
