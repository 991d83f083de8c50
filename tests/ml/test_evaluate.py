import pandas as pd
import pytest

from ml.evaluate import lead_time_summary, lead_times, ranking_metrics


def test_lead_time_counts_days_from_first_alert_to_the_event():
    weeks = pd.date_range("2025-01-06", periods=12, freq="7D")
    test = pd.DataFrame(
        {
            "account_id": ["early"] * 12 + ["late"] * 12 + ["missed"] * 12,
            "as_of_date": list(weeks) * 3,
        }
    )
    event = weeks[10]
    proba = [0.0] * 36
    proba[5] = 0.9  # "early": crosses 35 days before its event
    proba[12 + 9] = 0.9  # "late": only 7 days before
    events = pd.DataFrame({"account_id": ["early", "late", "missed"], "event_date": [event] * 3})
    leads = lead_times(test, proba, events, threshold=0.5, window_days=120).set_index("account_id")
    assert leads.loc["early", "lead_days"] == 35
    assert leads.loc["late", "lead_days"] == 7
    assert pd.isna(leads.loc["missed", "lead_days"])
    summary = lead_time_summary(leads.reset_index(), ahead_days=30)
    assert summary["lead_share_ge_30d"] == pytest.approx(1 / 3)
    assert summary["lead_alerted_share"] == pytest.approx(2 / 3)


def test_precision_recall_and_lift_at_top():
    labels = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    scores = [0.9, 0.1, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]
    m = ranking_metrics(labels, scores, top_fraction=0.2)  # top 2 rows: 0.9 (pos), 0.8 (neg)
    assert m["precision_at_top"] == 0.5
    assert m["recall_at_top"] == pytest.approx(1 / 3)
    assert m["lift_at_top"] == pytest.approx(0.5 / 0.3)
