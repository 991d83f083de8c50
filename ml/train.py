"""Train a calibrated LightGBM model on the weekly feature grid and evaluate it on a holdout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml import evaluate
from ml.config import TrainConfig
from ml.features import event_dates_from_labels, feature_matrix, select_feature_columns
from ml.model import Calibrator, ScoringModel
from ml.split import Split, check_positives, time_split


@dataclass
class TrainResult:
    """The model plus everything needed to log, judge and explain it."""

    config: TrainConfig
    model: ScoringModel
    split: Split
    best_iteration: int
    # Holdout metrics: model_* for the model, baseline_* for the heuristic, lead_* for lead time.
    metrics: dict[str, float]
    test_probabilities: np.ndarray
    leads: pd.DataFrame
    importance: pd.DataFrame
    alert_threshold: float
    params: dict[str, object] = field(default_factory=dict)

    def write_plots(self, directory: Path) -> list[Path]:
        """Calibration, importance, contribution summary and lead-time plots as PNG files."""
        directory.mkdir(parents=True, exist_ok=True)
        test = self.split.test
        labels = test[self.config.label].astype(int).to_numpy()
        contributions = self.model.contributions(test)
        values = feature_matrix(test, self.model.features)
        return [
            evaluate.calibration_plot(
                labels, self.test_probabilities, directory / "calibration.png"
            ),
            evaluate.importance_plot(self.importance, directory / "feature_importance.png"),
            evaluate.contribution_summary_plot(
                contributions, values, directory / "contribution_summary.png"
            ),
            evaluate.lead_time_plot(
                self.leads, directory / "lead_time.png", self.config.lead_time_days
            ),
        ]


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


def train_model(
    frame: pd.DataFrame,
    config: TrainConfig,
    event_dates: pd.DataFrame | None = None,
) -> TrainResult:
    """Split by time, train with early stopping, calibrate on validation, evaluate on test.

    Args:
        frame: the weekly feature grid (`marts.ml_features` columns).
        config: model settings; `config.label` names the label column.
        event_dates: optional `account_id, event_date` of the real events (churn or expansion)
            for the lead-time report; estimated from the label grid when omitted.

    Raises:
        InsufficientLabelsError: a period has fewer positives than the config requires.
        ValueError: the frame lacks required columns or history.
    """
    features = select_feature_columns(frame, config.features)
    split = time_split(
        frame, config.label, config.horizon_days, config.train_fraction, config.validation_fraction
    )
    check_positives(
        split,
        config.label,
        {
            "train": config.min_positives_train,
            "validation": config.min_positives_validation,
            "test": config.min_positives_test,
        },
    )
    params = lightgbm_params(config)
    y_train = split.train[config.label].astype(int).to_numpy()
    y_val = split.validation[config.label].astype(int).to_numpy()
    train_set = lgb.Dataset(feature_matrix(split.train, features), y_train, free_raw_data=False)
    val_set = lgb.Dataset(
        feature_matrix(split.validation, features), y_val, reference=train_set, free_raw_data=False
    )
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
    raw_val = booster.predict(feature_matrix(split.validation, features), raw_score=True)
    calibrator = Calibrator.fit(raw_val, y_val, config.calibration, config.seed)
    model = ScoringModel(booster=booster, calibrator=calibrator, features=features)

    test = split.test
    y_test = test[config.label].astype(int).to_numpy()
    proba = model.predict_proba(test)
    metrics = {
        f"model_{k}": v
        for k, v in evaluate.ranking_metrics(y_test, proba, config.top_fraction).items()
    }
    baseline = evaluate.ranking_metrics(
        y_test, evaluate.baseline_score(test, config), config.top_fraction
    )
    baseline.pop("brier")  # the baseline is a ranking, not a probability
    metrics.update({f"baseline_{k}": v for k, v in baseline.items()})

    n_top = max(1, int(round(len(proba) * config.top_fraction)))
    threshold = float(np.sort(proba)[::-1][n_top - 1])
    if event_dates is None:
        # The whole grid, not just the test rows: an event early in the test period was
        # first seen by rows inside the gap before it.
        event_dates = event_dates_from_labels(frame, config.horizon_days, config.label)
    leads = evaluate.lead_times(test, proba, event_dates, threshold, config.lead_time_window_days)
    metrics.update(evaluate.lead_time_summary(leads, config.lead_time_days))
    metrics["alert_threshold"] = threshold
    metrics["best_iteration"] = float(booster.current_iteration())

    return TrainResult(
        config=config,
        model=model,
        split=split,
        best_iteration=booster.current_iteration(),
        metrics=metrics,
        test_probabilities=proba,
        leads=leads,
        importance=evaluate.importance_frame(booster, features),
        alert_threshold=threshold,
        params=params,
    )
