import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ml.evaluate import (
    bootstrap_weights,
    compare,
    lead_time_summary,
    lead_times,
    ranking_metrics,
    weighted_metrics,
)


def test_lead_time_counts_days_from_first_alert_to_the_real_outcome_date():
    weeks = pd.date_range("2025-01-06", periods=12, freq="7D")
    test = pd.DataFrame(
        {
            "account_id": ["early"] * 12 + ["late"] * 12 + ["missed"] * 12 + ["after"] * 12,
            "as_of_date": list(weeks) * 4,
        }
    )
    event = weeks[10]
    proba = np.zeros(48)
    proba[5] = 0.9  # "early": crosses 35 days before its outcome
    proba[12 + 9] = 0.9  # "late": only 7 days before
    proba[36 + 11] = 0.9  # "after": alerted 7 days after the silence began
    events = pd.DataFrame(
        {"account_id": ["early", "late", "missed", "after"], "event_date": [event] * 4}
    )
    # An outcome (a churn date): only alerts strictly before it count.
    leads = lead_times(test, proba, 0.5, events, 120, 0, 30).set_index("account_id")
    assert leads.loc["early", "lead_days"] == 35
    assert leads.loc["late", "lead_days"] == 7
    assert pd.isna(leads.loc["missed", "lead_days"]) and pd.isna(leads.loc["after", "lead_days"])
    # A silence: an alert until the account is declared dormant still counts, negatively.
    silence = lead_times(test, proba, 0.5, events, 120, 30, 1).set_index("account_id")
    assert silence.loc["after", "lead_days"] == -7
    summary = lead_time_summary(silence.reset_index(), ahead_days=30)
    assert summary["lead_ge_30d_share"] == pytest.approx(1 / 4)
    assert summary["lead_before_share"] == pytest.approx(2 / 4)
    assert summary["lead_alerted_share"] == pytest.approx(3 / 4)


def test_precision_recall_and_lift_at_top():
    labels = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    scores = [0.9, 0.1, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]
    m = ranking_metrics(labels, scores, top_fraction=0.2)  # top 2 rows: 0.9 (pos), 0.8 (neg)
    assert m["precision_at_top"] == 0.5
    assert m["recall_at_top"] == pytest.approx(1 / 3)
    assert m["lift_at_top"] == pytest.approx(0.5 / 0.3)


def test_weighted_metrics_equal_scikit_learn_with_ties_and_with_repeated_rows():
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.2).astype(int)
    s = np.round(rng.random(3000) + 0.4 * y, 1)  # coarse: many ties
    ones = weighted_metrics(y, s, np.ones((1, len(y))), 0.1)
    assert ones["roc_auc"][0] == pytest.approx(roc_auc_score(y, s))
    assert ones["pr_auc"][0] == pytest.approx(average_precision_score(y, s))
    top = ranking_metrics(y, s, 0.1)
    assert ones["lift_at_top"][0] == pytest.approx(top["lift_at_top"])
    # integer weights are the same as repeating rows
    w = rng.integers(0, 4, len(y))
    rep = np.repeat(np.arange(len(y)), w)
    weighted = weighted_metrics(y, s, w[None, :], 0.1)
    assert weighted["roc_auc"][0] == pytest.approx(roc_auc_score(y[rep], s[rep]))
    assert weighted["pr_auc"][0] == pytest.approx(average_precision_score(y[rep], s[rep]))


def test_bootstrap_resamples_whole_accounts():
    accounts = np.array(["a", "a", "b", "c", "c", "c"])
    _, boot = bootstrap_weights(accounts, 50, seed=1)
    # rows of one account always carry the same weight; weights sum to the account count drawn
    assert (boot[:, 0] == boot[:, 1]).all() and (boot[:, 3] == boot[:, 5]).all()
    per_account = boot[:, [0, 2, 3]]
    assert (per_account.sum(axis=1) == 3).all()


def test_paired_differences_share_resamples():
    rng = np.random.default_rng(2)
    accounts = np.repeat(np.arange(400), 5)
    y = (rng.random(2000) < 0.3).astype(int)
    good = y + rng.normal(0, 0.8, 2000)
    c = compare(
        y,
        accounts,
        {"model": good, "same": good.copy(), "noise": rng.random(2000)},
        "model",
        0.1,
        100,
        0.95,
        seed=3,
    )
    assert c.difference["same"]["roc_auc"] == (0.0, 0.0, 0.0)
    value, lo, hi = c.difference["noise"]["roc_auc"]
    assert lo > 0.1 and lo <= value <= hi
    assert c.positive_accounts == len(set(accounts[y == 1]))
