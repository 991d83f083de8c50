"""Training mechanics on the plumbing grid: what must hold whatever the data (no quality claims;
the model is judged on CDNOW in test_cdnow.py)."""

import numpy as np
import pandas as pd
import pytest

from ml.config import churn_config
from ml.evaluate import alert_threshold
from ml.features import select_feature_columns
from ml.split import InsufficientLabelsError
from ml.train import train_model
from tests.ml.conftest import HORIZON


def test_a_model_trained_on_shuffled_labels_does_not_beat_the_baselines(grid, churn_cfg):
    """With the labels shuffled there is nothing to learn: the bootstrap interval of model minus
    the best baseline must not lie above zero, or the evaluation could be fooled by noise."""
    shuffled = grid.copy()
    shuffled["label_churn"] = np.random.default_rng(3).permutation(shuffled["label_churn"].values)
    result = train_model(shuffled, churn_cfg)
    m = result.metrics
    assert m["diff_best_baseline_pr_auc_lo"] <= 0.0
    # and the model's own interval covers chance
    assert m["model_roc_auc_lo"] < 0.5 < m["model_roc_auc_hi"]


def test_alert_threshold_comes_from_validation_and_never_from_the_test_period(churn_result):
    validation = churn_result.model.predict_proba(churn_result.split.validation)
    assert churn_result.alert_threshold == alert_threshold(validation, 0.10)
    test = churn_result.test_probabilities
    # the share of test rows above it is whatever it is; it is not forced to 10 %
    assert churn_result.alert_threshold != alert_threshold(test, 0.10)


def test_no_training_or_validation_row_is_within_the_label_window_of_the_test_period(
    churn_result,
):
    split = churn_result.split
    window = pd.Timedelta(days=HORIZON)
    latest = max(split.train["as_of_date"].max(), split.validation["as_of_date"].max())
    assert latest + window < split.test["as_of_date"].min()
    assert not set(split.train["account_id"]) & set(split.validation["account_id"])


def test_features_exclude_keys_labels_and_hand_made_scores(grid):
    features = select_feature_columns(grid)
    assert "logins_28d" in features and "days_since_admin_activity" in features
    for banned in ("health_score", "score_engagement", "label_churn", "is_data_complete", "plan"):
        assert banned not in features
    with pytest.raises(ValueError, match="not in the feature frame"):
        select_feature_columns(grid, ("logins_28d", "no_such_column"))


def test_too_few_positives_raises_with_counts(grid):
    sparse = grid.copy()
    keep = sparse.index[sparse["label_churn"] == 1][:3]
    sparse["label_churn"] = 0
    sparse.loc[keep, "label_churn"] = 1
    with pytest.raises(InsufficientLabelsError, match=r"train: \d+ positive of \d+ rows"):
        train_model(sparse, churn_config(horizon_days=HORIZON))


def test_training_is_deterministic(grid, churn_cfg, churn_result):
    again = train_model(grid, churn_cfg)
    np.testing.assert_array_equal(again.test_probabilities, churn_result.test_probabilities)
    assert again.best_iteration == churn_result.best_iteration
    assert again.metrics == churn_result.metrics


def test_every_baseline_is_judged_on_the_same_rows_with_intervals(churn_result):
    c = churn_result.comparison
    assert {"model", "recency", "frequency", "health_score", "calendar"} <= set(c.names)
    for name in c.names:
        lo, hi = c.interval[name]["roc_auc"]
        assert lo <= c.point[name]["roc_auc"] <= hi
    assert c.rows == len(churn_result.split.test)
    assert churn_result.best_baseline in c.names


def test_expansion_model_trains_on_its_own_label(grid):
    from ml.config import expansion_config

    result = train_model(
        grid, expansion_config(horizon_days=HORIZON, min_positives_test=3, bootstrap_samples=20)
    )
    assert result.config.label == "label_expand"
    assert 0.0 <= result.test_probabilities.min() <= result.test_probabilities.max() <= 1.0
