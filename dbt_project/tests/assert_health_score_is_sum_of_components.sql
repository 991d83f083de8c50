-- The score must be explainable: it is the sum of its score_* columns (those the score used;
-- a component whose inputs are unknown is NULL and left out), stays within 0-100, and exists
-- exactly when at least one component was used.
select account_id, as_of_date, health_score
from {{ ref('account_health') }}
where health_score < 0
    or health_score > 100
    or (health_score is null) != (health_components_used = 0)
    or abs(
        health_score
        - (coalesce(score_seat_utilisation, 0) + coalesce(score_usage_trend, 0)
            + coalesce(score_feature_breadth, 0) + coalesce(score_admin_recency, 0)
            + coalesce(score_activity_recency, 0))
    ) > 0.06
