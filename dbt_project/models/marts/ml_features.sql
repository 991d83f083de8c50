-- Point-in-time training and scoring frame: account_health's numeric measures on a weekly grid
-- (Mondays) plus the run's as-of date, with churn/expansion labels from the outcomes after it.
{%- set features = [
    'active_users_7d', 'active_users_28d', 'active_users_90d', 'active_users_prev_28d',
    'logins_7d', 'logins_28d', 'logins_90d', 'logins_prev_28d',
    'session_minutes_7d', 'session_minutes_28d', 'session_minutes_90d',
    'docs_viewed_28d', 'docs_downloaded_28d', 'docs_shared_28d', 'docs_uploaded_28d',
    'docs_commented_28d', 'feature_events_28d', 'premium_feature_events_28d',
    'csm_emails_opened_28d', 'csm_emails_clicked_28d', 'admin_active_users_28d',
    'feature_breadth_28d', 'feature_breadth_prev_28d', 'premium_feature_breadth_28d',
    'active_users_trend_28d', 'logins_trend_28d', 'wow_logins_change', 'seat_utilisation',
    'days_since_last_activity', 'days_since_admin_activity', 'days_to_renewal', 'seats',
    'missing_days_28d', 'health_score',
] %}
{%- set churn_days = var('churn_horizon_days') | int %}
{%- set expand_days = var('expand_horizon_days') | int %}

with

health as (

    select * from {{ ref('account_health') }}

),

outcomes as (

    -- outcomes known by the run's as-of date only
    select * from {{ ref('stg_raw__outcomes') }}
    where effective_date <= {{ as_of_date() }}

),

run_date as (

    select {{ as_of_date() }} as run_as_of_date

),

churns as (

    select
        account_id,
        min(effective_date) as churned_date
    from outcomes
    where outcome = 'churned'
    group by account_id

),

grid as (

    select health.*
    from health
    cross join run_date
    left join churns
        on health.account_id = churns.account_id
    -- rows after the run's as-of date (left by a later run) are not part of this run's frame,
    -- and an account that has churned is no longer a customer to predict for
    where
        health.as_of_date <= run_date.run_as_of_date
        and (churns.churned_date is null or health.as_of_date < churns.churned_date)
        and (
            health.as_of_date = cast({{ dbt.date_trunc('week', 'health.as_of_date') }} as date)
            or health.as_of_date = run_date.run_as_of_date
        )

),

labels as (

    select
        grid.account_id,
        grid.as_of_date,
        max(case
            when
                outcomes.outcome = 'churned'
                and outcomes.effective_date <= {{ add_days(churn_days, 'grid.as_of_date') }}
                then 1
            else 0
        end) as label_churn,
        max(case
            when
                outcomes.outcome = 'expanded'
                and outcomes.effective_date <= {{ add_days(expand_days, 'grid.as_of_date') }}
                then 1
            else 0
        end) as label_expand
    from grid
    inner join outcomes
        on
            grid.account_id = outcomes.account_id
            and grid.as_of_date < outcomes.effective_date
    group by grid.account_id, grid.as_of_date

),

final as (

    select
        grid.account_id,
        grid.as_of_date,
        {%- for feature in features %}
            {%- if feature in ('seat_utilisation', 'active_users_trend_28d', 'logins_trend_28d', 'wow_logins_change') %}
                grid.{{ feature }},
            {%- else %}
                cast(grid.{{ feature }} as double) as {{ feature }},
            {%- endif %}
        {%- endfor %}
        cast(grid.arr as double) as arr,
        cast(coalesce(labels.label_churn, 0) as integer) as label_churn,
        cast(coalesce(labels.label_expand, 0) as integer) as label_expand,
        -- a label is only trustworthy once both horizons have fully passed
        {{ add_days([churn_days, expand_days] | max, 'grid.as_of_date') }} <= run_date.run_as_of_date
            as is_label_observable
    from grid
    cross join run_date
    left join labels
        on
            grid.account_id = labels.account_id
            and grid.as_of_date = labels.as_of_date

)

select * from final
