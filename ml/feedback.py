"""CSM feedback on alerts as labels: extra churn labels or an evaluation slice for training."""

from __future__ import annotations

import pandas as pd

# What a resolution says about churn: lost = it churned; saved = it would have, but was kept
# (a positive for "needed attention"); not_useful = the alert was wrong; useful says nothing.
FEEDBACK_LABELS = {"lost": 1, "saved": 1, "not_useful": 0}


def feedback_labels(con) -> pd.DataFrame:
    """One row per account and Monday (the `marts.ml_features` weekly grid, the Monday on or
    before the alert was raised) with feedback: `account_id, as_of_date, rule_id, feedback,
    label_needs_attention` (1 lost/saved, 0 not_useful). Join on (account_id, as_of_date) to
    weight or slice training and evaluation; empty when nobody has given feedback yet.
    """
    exists = con.execute(
        "select count(*) from information_schema.columns "
        "where table_schema = 'alerts' and table_name = 'alerts' and column_name = 'feedback'"
    ).fetchone()[0]
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
