{#-
    Uplift of acting on alerts: alerted accounts whose alerts were delivered (treated) against
    alerted accounts in the control group (holdout, alerts recorded but never sent). One row per
    metric with a 95% normal-approximation interval and whether the sample can support a claim.
-#}
{%- set horizon = var('alert_outcome_horizon_days', 90) -%}
{%- set min_group = var('uplift_min_group_accounts', 30) -%}
{%- set min_events = var('uplift_min_events', 10) -%}

with

alerted as (

    select
        account_id,
        min(raised_on) as first_alert_on,
        max(case when is_holdout then 1 else 0 end) = 1 as is_holdout,
        max(as_of_date) as as_of_date
    from {{ ref('alert_outcomes') }}
    group by account_id

),

outcomes as (

    select * from {{ ref('stg_raw__outcomes') }}

),

per_account as (

    select
        a.account_id,
        a.is_holdout,
        max(case when o.outcome = 'churned' then 1 else 0 end) as churned,
        max(case when o.outcome = 'expanded' then 1 else 0 end) as expanded,
        cast(sum(case when o.outcome = 'expanded' then o.arr_delta else 0 end) as double)
            as arr_gained
    from alerted as a
    left join outcomes as o
        on o.account_id = a.account_id
        and o.effective_date >= a.first_alert_on
        and o.effective_date <= {{ add_days(horizon, 'a.first_alert_on') }}
        and o.effective_date <= a.as_of_date
    group by a.account_id, a.is_holdout

),

metrics as (

    select 'churn_rate' as metric, is_holdout, churned as hit, 0.0 as revenue from per_account
    union all
    select 'expansion_rate' as metric, is_holdout, expanded as hit, arr_gained as revenue
    from per_account

),

groups as (

    select
        metric,
        cast(count_if(not is_holdout) as bigint) as treated_accounts,
        cast(sum(case when not is_holdout then hit else 0 end) as bigint) as treated_events,
        cast(count_if(is_holdout) as bigint) as holdout_accounts,
        cast(sum(case when is_holdout then hit else 0 end) as bigint) as holdout_events,
        cast(sum(case when not is_holdout then revenue else 0 end) as double) as treated_revenue,
        cast(sum(case when is_holdout then revenue else 0 end) as double) as holdout_revenue
    from metrics
    group by metric

),

rates as (

    select
        *,
        treated_events / nullif(cast(treated_accounts as double), 0) as treated_rate,
        holdout_events / nullif(cast(holdout_accounts as double), 0) as holdout_rate,
        treated_revenue / nullif(cast(treated_accounts as double), 0)
            as treated_revenue_per_account,
        holdout_revenue / nullif(cast(holdout_accounts as double), 0)
            as holdout_revenue_per_account
    from groups

),

with_interval as (

    select
        *,
        -- Positive uplift = better with alerts: less churn, more expansion.
        case when metric = 'churn_rate' then holdout_rate - treated_rate
            else treated_rate - holdout_rate end as uplift,
        1.96 * sqrt(
            treated_rate * (1 - treated_rate) / nullif(cast(treated_accounts as double), 0)
            + holdout_rate * (1 - holdout_rate) / nullif(cast(holdout_accounts as double), 0)
        ) as margin_95,
        (
            treated_accounts >= {{ min_group }} and holdout_accounts >= {{ min_group }}
            and treated_events + holdout_events >= {{ min_events }}
        ) as is_sample_sufficient
    from rates

),

final as (

    select
        metric,
        treated_accounts,
        treated_events,
        treated_rate,
        holdout_accounts,
        holdout_events,
        holdout_rate,
        treated_revenue_per_account,
        holdout_revenue_per_account,
        uplift,
        uplift - margin_95 as uplift_ci_low,
        uplift + margin_95 as uplift_ci_high,
        is_sample_sufficient,
        case
            when holdout_accounts = 0 then 'no holdout: turn it on in routing.yml to measure uplift'
            when not is_sample_sufficient then
                'sample too small to conclude (need {{ min_group }} accounts per group and '
                || '{{ min_events }} events)'
            when uplift - margin_95 > 0 then 'alerts help: the interval is above zero'
            when uplift + margin_95 < 0 then 'alerts hurt: the interval is below zero'
            else 'no detectable difference: the interval includes zero'
        end as conclusion
    from with_interval

)

select * from final
