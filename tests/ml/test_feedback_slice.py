"""CSM feedback as an evaluation slice: the churn model is judged on what people said."""

from __future__ import annotations

import pandas as pd

from ml.feedback import feedback_slice_metrics


def _feedback(rows: pd.DataFrame, needed: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": rows["account_id"].to_numpy(),
            "as_of_date": pd.to_datetime(rows["as_of_date"]).dt.date.to_numpy(),
            "rule_id": "churn_risk_high",
            "feedback": "lost" if needed else "not_useful",
            "label_needs_attention": int(needed),
        }
    )


def test_slice_ranks_needed_alerts_above_not_useful_ones(grid, churn_result):
    model = churn_result.model
    scored = grid.assign(p=model.predict_proba(grid))
    # CSMs said "needed" on the riskiest rows and "not useful" on the calmest ones.
    top = scored.nlargest(20, "p")
    bottom = scored.nsmallest(20, "p")
    feedback = pd.concat([_feedback(top, True), _feedback(bottom, False)], ignore_index=True)
    metrics = feedback_slice_metrics(model, grid, feedback)
    assert metrics["feedback_rows"] == 40
    assert metrics["feedback_needed_rows"] == 20
    assert metrics["feedback_mean_score_needed"] > metrics["feedback_mean_score_not_useful"]
    assert metrics["feedback_roc_auc"] == 1.0
    # The same feedback turned around: the model now disagrees with the people using it.
    flipped = feedback.assign(label_needs_attention=1 - feedback["label_needs_attention"])
    assert feedback_slice_metrics(model, grid, flipped)["feedback_roc_auc"] == 0.0


def test_no_feedback_yet_is_a_count_of_zero(grid, churn_result):
    empty = pd.DataFrame(
        columns=["account_id", "as_of_date", "rule_id", "feedback", "label_needs_attention"]
    )
    assert feedback_slice_metrics(churn_result.model, grid, empty) == {"feedback_rows": 0.0}
