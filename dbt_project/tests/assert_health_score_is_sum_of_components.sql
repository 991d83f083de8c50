-- The score must be explainable: it is the sum of its score_* columns and stays within 0-100.
select account_id, as_of_date, health_score
from {{ ref('account_health') }}
where health_score < 0
    or health_score > 100
    or abs(
        health_score
        - (score_seat_utilisation + score_usage_trend + score_feature_breadth
            + score_admin_recency + score_activity_recency)
    ) > 0.06
