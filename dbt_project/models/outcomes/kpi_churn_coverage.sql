{#-
    Recall with lead time: one row per churned account, with its earliest risk alert raised in
    the horizon before the churn and whether that came at least `recall_lead_days` ahead.
-#}
{%- set horizon = var('alert_outcome_horizon_days', 90) -%}
{%- set lead = var('recall_lead_days', 30) -%}

with

churn_outcomes as (

    select account_id, min(effective_date) as churned_date
    from {{ ref('stg_raw__outcomes') }}
    where outcome = 'churned'
    group by account_id

),

churns as (

    select account_id, churned_date, 'churned' as churn_kind
    from churn_outcomes
    union all
    -- an account without a churn outcome that is dormant now left by going silent: its churn
    -- date is the real start of the silence
    select d.account_id, d.inactive_since_date as churned_date, 'went_dormant' as churn_kind
    from {{ ref('account_dormancy') }} as d
    where
        d.is_current
        and d.account_id not in (select churn_outcomes.account_id from churn_outcomes)

),

risk_alerts as (

    select account_id, raised_on, is_holdout
    from {{ ref('alert_outcomes') }}
    where is_risk_alert

),

first_alerts as (

    select
        c.account_id,
        c.churned_date,
        c.churn_kind,
        min(r.raised_on) as first_risk_alert_on,
        max(case when r.is_holdout then 1 else 0 end) = 1 as is_holdout
    from churns as c
    left join risk_alerts as r
        on r.account_id = c.account_id
        and r.raised_on <= c.churned_date
        and r.raised_on >= {{ add_days(-horizon, 'c.churned_date') }}
    group by c.account_id, c.churned_date, c.churn_kind

),

final as (

    select
        account_id,
        churned_date,
        churn_kind,
        cast({{ dbt.date_trunc('week', 'churned_date') }} as date) as churned_week,
        first_risk_alert_on,
        {{ days_between('first_risk_alert_on', 'churned_date') }} as lead_days,
        first_risk_alert_on is not null as had_risk_alert,
        coalesce({{ days_between('first_risk_alert_on', 'churned_date') }} >= {{ lead }}, false)
            as had_risk_alert_with_lead,
        is_holdout
    from first_alerts
    -- Only churns the alert history could have caught: after the first evaluated day.
    where churned_date >= (select min(raised_on) from risk_alerts)

)

select * from final
