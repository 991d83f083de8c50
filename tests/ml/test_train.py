import numpy as np
import pandas as pd
import pytest

from ml.config import churn_config, expansion_config
from ml.features import inactivity_labels, select_feature_columns
from ml.split import InsufficientLabelsError, time_split
from ml.train import train_model
from tests.ml.conftest import HORIZON


def test_model_beats_heuristic_baseline_on_held_out_period(churn_result):
    m = churn_result.metrics
    assert m["model_pr_auc"] > m["baseline_pr_auc"] + 0.15
    assert m["model_roc_auc"] > m["baseline_roc_auc"] + 0.05
    assert m["model_lift_at_top"] > m["baseline_lift_at_top"]
    # Calibrated: better than always predicting the base rate.
    assert m["model_brier"] < m["model_base_rate"] * (1 - m["model_base_rate"])


def test_split_never_trains_on_dates_at_or_after_the_evaluation_periods(grid):
    split = time_split(grid, "label_churn", HORIZON, 0.6, 0.2)
    gap = pd.Timedelta(days=HORIZON)
    train_max = split.train["as_of_date"].max()
    val_min, val_max = split.validation["as_of_date"].min(), split.validation["as_of_date"].max()
    test_min = split.test["as_of_date"].min()
    # A training label looks HORIZON days ahead; it must end before validation starts.
    assert train_max + gap < val_min
    assert val_max + gap < test_min
    assert split.test["is_label_observable"].all()
    assert len(split.train) and len(split.validation) and len(split.test)


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
    with pytest.raises(
        InsufficientLabelsError, match=r"train: \d+ positive of \d+ rows \(need 20\)"
    ):
        train_model(sparse, churn_config(horizon_days=HORIZON))


def test_training_is_deterministic(grid, churn_result):
    again = train_model(grid, churn_config(horizon_days=HORIZON))
    np.testing.assert_array_equal(again.test_probabilities, churn_result.test_probabilities)
    assert again.best_iteration == churn_result.best_iteration


def test_expansion_model_trains_on_its_own_label(grid):
    result = train_model(grid, expansion_config(horizon_days=HORIZON, min_positives_test=3))
    assert result.config.label == "label_expand"
    assert 0.0 <= result.test_probabilities.min() <= result.test_probabilities.max() <= 1.0
    assert result.split.describe("label_expand")["train_positives"] >= 20


def test_inactivity_labels_when_outcomes_are_absent():
    days = pd.date_range("2025-01-01", periods=200, freq="D")
    daily = pd.DataFrame(
        {
            "account_id": ["a"] * 200 + ["b"] * 200,
            "activity_date": list(days) * 2,
            # a goes silent after day 99 (2025-04-09); b stays active.
            "is_active": [i < 100 for i in range(200)] + [True] * 200,
        }
    )
    weekly = days[::7]
    features = pd.DataFrame(
        {
            "account_id": ["a"] * len(weekly) + ["b"] * len(weekly),
            "as_of_date": list(weekly) * 2,
            "logins_28d": 1.0,
            "label_churn": 0,
        }
    )
    out = inactivity_labels(features, daily, inactive_days=30, horizon_days=28)
    churn_day = days[100]
    a = out[out["account_id"] == "a"]
    assert a["as_of_date"].max() < churn_day  # no rows once the account is gone
    positive = a[a["label_churn"] == 1]["as_of_date"]
    assert not positive.empty
    assert ((churn_day - positive).dt.days <= 28).all()
    assert out[out["account_id"] == "b"]["label_churn"].sum() == 0
    # Observable only when horizon + silence window fits in the data.
    late = out[pd.to_datetime(out["as_of_date"]) > days[-1] - pd.Timedelta(days=58)]
    assert not late["is_label_observable"].any()
