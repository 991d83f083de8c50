"""Train a calibrated LightGBM model on a date split and judge it against baselines on the test
period, with account-level bootstrap intervals, lead times to real outcome dates and strata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml import evaluate
from ml.baselines import Baselines
from ml.config import TrainConfig
from ml.features import feature_matrix, select_feature_columns
from ml.model import Calibrator, ScoringModel
from ml.split import Split, check_positives, date_split

MODEL = "model"


@dataclass
class TrainResult:
    """The model plus everything needed to log, judge, explain and gate it."""

    config: TrainConfig
    model: ScoringModel
    split: Split
    best_iteration: int
    baselines: Baselines
    comparison: evaluate.Comparison
    # scorer -> validation threshold (the top `top_fraction` of validation rows)
    thresholds: dict[str, float]
    # scorer -> test-period scores, in the order of split.test
    test_scores: dict[str, np.ndarray]
    # scorer -> one row per real outcome in the test period with its lead time
    leads: dict[str, pd.DataFrame]
    strata: pd.DataFrame
    importance: pd.DataFrame
    # features that are NULL on every training row (a kind of data the warehouse lacks)
    empty_features: list[str]
    params: dict[str, object] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def alert_threshold(self) -> float:
        return self.thresholds[MODEL]

    @property
    def test_probabilities(self) -> np.ndarray:
        return self.test_scores[MODEL]

    @property
    def best_baseline(self) -> str | None:
        """The baseline with the best point estimate of the primary metric on the test period."""
        return self.comparison.best_other(self.config.primary_metric, self.baselines.names)

    def lead_summary(self, scorer: str = MODEL) -> dict[str, float]:
        leads = self.leads.get(scorer)
        if leads is None:
            return {}
        return evaluate.lead_time_summary(leads, self.config.lead_time_days)

    @property
    def metrics(self) -> dict[str, float]:
        """Every number of the run, flat, for MLflow and the promotion gate."""
        out = self.comparison.flat()
        for scorer in self.leads:
            for k, v in self.lead_summary(scorer).items():
                out[f"{scorer}_{k}"] = v
        out["alert_threshold"] = self.alert_threshold
        out["best_iteration"] = float(self.best_iteration)
        best = self.best_baseline
        if best:
            m = self.config.primary_metric
            value, lo, hi = self.comparison.difference[best][m]
            out["best_baseline_" + m] = self.comparison.point[best][m]
            out["diff_best_baseline_" + m] = value
            out["diff_best_baseline_" + m + "_lo"] = lo
            out["diff_best_baseline_" + m + "_hi"] = hi
        return out

    def write_plots(self, directory: Path) -> list[Path]:
        """Calibration, cumulative gains, importance, contributions and lead-time plots."""
        directory.mkdir(parents=True, exist_ok=True)
        test = self.split.test
        labels = test[self.config.label].astype(int).to_numpy()
        contributions = self.model.contributions(test)
        values = feature_matrix(test, self.model.features)
        plots = [
            evaluate.calibration_plot(
                labels, self.test_probabilities, directory / "calibration.png"
            ),
            evaluate.lift_plot(labels, self.test_scores, directory / "lift.png"),
            evaluate.importance_plot(self.importance, directory / "feature_importance.png"),
            evaluate.contribution_summary_plot(
                contributions, values, directory / "contribution_summary.png"
            ),
        ]
        if MODEL in self.leads:
            plots.append(
                evaluate.lead_time_plot(
                    self.leads[MODEL], directory / "lead_time.png", self.config.lead_time_days
                )
            )
        return plots


def lightgbm_params(config: TrainConfig) -> dict[str, object]:
    """Fixed-seed, single-thread, deterministic LightGBM parameters."""
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_data_in_leaf": config.min_data_in_leaf,
        "feature_fraction": config.feature_fraction,
        "lambda_l2": config.lambda_l2,
        "seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        # One thread: the same result on every machine, and the team shares two cores.
        "num_threads": 1,
        "verbosity": -1,
    }


def lead_time_spans(config: TrainConfig) -> tuple[int, int]:
    """(after_days, events_until_days) of the lead-time report for the label source."""
    if config.label_source == "inactivity":
        # the real start of a silence is at most a day after a positive row; an alert still
        # helps until the account is declared dormant, horizon_days later
        return config.horizon_days, 1
    return 0, config.horizon_days


def train_model(
    frame: pd.DataFrame,
    config: TrainConfig,
    events: pd.DataFrame | None = None,
    extra_scorers: dict[str, Callable[[pd.DataFrame], np.ndarray]] | None = None,
) -> TrainResult:
    """Split by date, train with early stopping on validation accounts, calibrate and pick the
    alert threshold on validation, and judge model, baselines and `extra_scorers` (e.g. the
    current champion) on the same test rows.

    Args:
        frame: `marts.ml_features` rows.
        config: model settings (label source, split dates, bootstrap, gate).
        events: `account_id, event_date` of the real outcomes (churn effective dates, or the
            first silent day of each dormancy) for the lead-time report; none = no report.
        extra_scorers: name -> function giving a score per row; a scorer that cannot score the
            rows (ValueError, e.g. a model trained on other features) is left out with a note.

    Raises:
        InsufficientLabelsError: a period has fewer positives than the config requires.
        ValueError: the frame lacks required columns or history.
    """
    features = select_feature_columns(frame, config.features)
    split = date_split(frame, config)
    label = config.label
    check_positives(
        split,
        label,
        {
            "train": config.min_positives_train,
            "validation": config.min_positives_validation,
            "test": config.min_positives_test,
        },
    )
    params = lightgbm_params(config)
    x_train = feature_matrix(split.train, features)
    x_val = feature_matrix(split.validation, features)
    y_train = split.train[label].astype(int).to_numpy()
    y_val = split.validation[label].astype(int).to_numpy()
    train_set = lgb.Dataset(x_train, y_train, free_raw_data=False)
    val_set = lgb.Dataset(x_val, y_val, reference=train_set, free_raw_data=False)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.num_boost_round,
        valid_sets=[val_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    # Keep only the rounds that helped on validation, so saved model == evaluated model.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    raw_val = booster.predict(x_val, raw_score=True)
    calibrator = Calibrator.fit(raw_val, y_val, config.calibration, config.seed)
    model = ScoringModel(booster=booster, calibrator=calibrator, features=features)

    window = pd.concat([split.train, split.validation], ignore_index=True)
    baselines = Baselines.fit(window, config)
    scorers: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {MODEL: model.predict_proba}
    scorers |= {name: (lambda f, n=name: baselines.score(f)[n]) for name in baselines.names}
    notes: dict[str, str] = {}
    for name, fn in (extra_scorers or {}).items():
        scorers[name] = fn
    test_scores: dict[str, np.ndarray] = {}
    thresholds: dict[str, float] = {}
    for name, fn in scorers.items():
        try:
            test_scores[name] = np.asarray(fn(split.test), dtype="float64")
            thresholds[name] = evaluate.alert_threshold(fn(split.validation), config.top_fraction)
        except ValueError as exc:
            if name == MODEL or name in baselines.names:
                raise
            notes[name] = f"cannot score these rows: {exc}"
            test_scores.pop(name, None)
    y_test = split.test[label].astype(int).to_numpy()
    comparison = evaluate.compare(
        y_test,
        split.test["account_id"].to_numpy(),
        test_scores,
        MODEL,
        config.top_fraction,
        config.bootstrap_samples,
        config.confidence,
        config.seed,
    )
    comparison.notes = notes
    leads: dict[str, pd.DataFrame] = {}
    if events is not None:
        after, until = lead_time_spans(config)
        for name, scores in test_scores.items():
            leads[name] = evaluate.lead_times(
                split.test,
                scores,
                thresholds[name],
                events,
                config.lead_time_window_days,
                after,
                until,
            )
    empty = [f for f in features if x_train[f].isna().all()]
    return TrainResult(
        config=config,
        model=model,
        split=split,
        best_iteration=booster.current_iteration(),
        baselines=baselines,
        comparison=comparison,
        thresholds=thresholds,
        test_scores=test_scores,
        leads=leads,
        strata=evaluate.strata_table(split.test, y_test, test_scores, config.top_fraction),
        importance=evaluate.importance_frame(booster, features),
        empty_features=empty,
        params=params,
        notes=notes,
    )
