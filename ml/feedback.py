"""CSM feedback on alerts as labels: extra churn labels or an evaluation slice for training."""

from __future__ import annotations

import pandas as pd

from warehouse.catalog import table_columns

# What a resolution says about churn: lost = it churned; saved = it would have, but was kept
# (a positive for "needed attention"); not_useful = the alert was wrong; useful says nothing.
FEEDBACK_LABELS = {"lost": 1, "saved": 1, "not_useful": 0}


def feedback_labels(con) -> pd.DataFrame:
    """One row per account and Monday (the `marts.ml_features` weekly grid, the Monday on or
    before the alert was raised) with feedback: `account_id, as_of_date, rule_id, feedback,
    label_needs_attention` (1 lost/saved, 0 not_useful). Join on (account_id, as_of_date) to
    weight or slice training and evaluation; empty when nobody has given feedback yet.
    """
    exists = "feedback" in table_columns(con, "alerts", "alerts")
    columns = ["account_id", "as_of_date", "rule_id", "feedback", "label_needs_attention"]
    if not exists:
        return pd.DataFrame(columns=columns)
    return con.execute(
        """
        select account_id,
               cast(first_raised_on - cast(isodow(first_raised_on) - 1 as integer) as date)
                   as as_of_date,
               rule_id, feedback,
               case feedback when 'not_useful' then 0 else 1 end as label_needs_attention
        from alerts.alerts
        where feedback in ('lost', 'saved', 'not_useful') and account_id != '*'
        order by account_id, as_of_date, rule_id
        """
    ).df()[columns]


def feedback_slice_metrics(model, frame: pd.DataFrame, feedback: pd.DataFrame) -> dict[str, float]:
    """How a trained model scores the account-weeks CSMs gave feedback on: an evaluation slice.

    `frame` is the training frame (marts.ml_features rows), `feedback` the output of
    `feedback_labels`. Returns counts, the mean probability for alerts CSMs called needed
    (lost/saved) and not useful, and the ROC AUC on that slice when both kinds are present — a
    model that ranks "needed attention" above "not useful" agrees with the people using it.
    """
    if feedback.empty:
        return {"feedback_rows": 0.0}
    keyed = frame.assign(as_of_date=pd.to_datetime(frame["as_of_date"]).dt.date)
    labels = feedback.assign(as_of_date=pd.to_datetime(feedback["as_of_date"]).dt.date)
    labels = labels.groupby(["account_id", "as_of_date"], as_index=False)[
        "label_needs_attention"
    ].max()
    joined = keyed.merge(labels, on=["account_id", "as_of_date"], how="inner")
    out = {"feedback_rows": float(len(joined))}
    if joined.empty:
        return out
    score = pd.Series(model.predict_proba(joined), index=joined.index)
    needed = joined["label_needs_attention"] == 1
    out["feedback_needed_rows"] = float(needed.sum())
    if needed.any():
        out["feedback_mean_score_needed"] = float(score[needed].mean())
    if (~needed).any():
        out["feedback_mean_score_not_useful"] = float(score[~needed].mean())
    if needed.any() and (~needed).any():
        from sklearn.metrics import roc_auc_score

        out["feedback_roc_auc"] = float(roc_auc_score(needed.astype(int), score))
    return out
