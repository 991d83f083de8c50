{#- One row per account alert: what people did with it and what the account did afterwards. -#}
{%- set horizon = var('alert_outcome_horizon_days', 90) -%}

with

alerts as (

    select * from {{ ref('stg_alerts__alerts') }}
    -- Warehouse-wide data-freshness alerts concern no account: nothing to attribute.
    where account_id != '*'

),

audit as (

    select * from {{ ref('stg_alerts__audit_log') }}

),

outbox as (

    select * from {{ ref('stg_ops__outbox') }}

),

outcomes as (

    select * from {{ ref('stg_raw__outcomes') }}

),

accounts as (

    select account_id, csm_email, manager_email from {{ ref('dim_accounts') }}

),

actions as (

    select
        alert_id,
        min(case when is_human_action then event_at end) as first_action_at,
        min(case when event_name = 'acknowledged' then event_at end) as acknowledged_at,
        min(case when event_name = 'resolved' and is_human_action then event_at end)
            as human_resolved_at,
        max(case when event_name = 'snoozed' then 1 else 0 end) = 1 as was_snoozed,
        max(case when event_name = 'escalated' then 1 else 0 end) = 1 as was_escalated
    from audit
    group by alert_id

),

deliveries as (

    select
        alert_id,
        min(case when channel = 'email' and delivery_status = 'sent' then sent_at end)
            as email_sent_at,
        min(case when channel = 'crm_task' and delivery_status in ('sent', 'recorded')
            then updated_at end) as crm_task_created_at,
        max(case when channel = 'crm_task' and remote_status = 'completed' then 1 else 0 end) = 1
            as is_crm_task_completed,
        max(case when idempotency_key like 'critical:%' and delivery_status = 'sent'
            then 1 else 0 end) = 1 as is_critical_delivered
    from outbox
    where alert_id is not null
    group by alert_id

),

ranked_outcomes as (

    select
        a.alert_id,
        o.outcome,
        o.effective_date,
        o.arr_delta,
        row_number() over (
            partition by a.alert_id
            -- The first thing that happened; churn wins a tie (it ends the account).
            order by o.effective_date asc nulls last,
                case when o.outcome = 'churned' then 0 else 1 end asc nulls last,
                o.outcome asc nulls last
        ) as outcome_rank
    from alerts as a
    inner join outcomes as o
        on o.account_id = a.account_id
        and o.effective_date >= a.raised_on
        and o.effective_date <= {{ add_days(horizon, 'a.raised_on') }}

),

first_outcome as (

    select * from ranked_outcomes where outcome_rank = 1

),

joined as (

    select
        a.alert_id,
        a.rule_id,
        a.alert_type,
        a.severity,
        a.account_id,
        coalesce(d.csm_email, a.owner_email) as csm_email,
        coalesce(d.manager_email, a.escalation_email) as team_manager_email,
        a.status,
        a.is_holdout,
        a.alert_type != 'expansion_opportunity' as is_risk_alert,
        a.raised_on,
        cast({{ dbt.date_trunc('week', 'a.raised_on') }} as date) as raised_week,
        -- The engine stamps a day's changes at the end of that day (midnight UTC after it).
        cast({{ add_days(1, 'a.raised_on') }} as timestamp) as raised_at,
        a.sla_due_at,
        coalesce(x.acknowledged_at, a.acknowledged_at) as acknowledged_at,
        x.first_action_at,
        a.resolved_at,
        x.human_resolved_at,
        a.resolution_reason,
        a.feedback,
        coalesce(x.was_snoozed, false) as was_snoozed,
        coalesce(x.was_escalated, false) as was_escalated,
        l.email_sent_at,
        l.crm_task_created_at,
        coalesce(l.is_crm_task_completed, false) as is_crm_task_completed,
        coalesce(l.is_critical_delivered, false) as is_critical_delivered,
        a.arr as arr_at_stake,
        o.outcome as outcome_within_horizon,
        o.effective_date as outcome_date,
        o.arr_delta as outcome_arr_delta,
        -- A save: the CSM says so, or the account renewed after someone acted on the alert.
        (
            a.alert_type != 'expansion_opportunity'
            and (
                coalesce(a.feedback, '') = 'saved'
                or (coalesce(o.outcome, '') = 'renewed' and x.first_action_at is not null)
            )
        ) as is_save,
        {{ as_of_date() }} as as_of_date
    from alerts as a
    left join accounts as d on d.account_id = a.account_id
    left join actions as x on x.alert_id = a.alert_id
    left join deliveries as l on l.alert_id = a.alert_id
    left join first_outcome as o on o.alert_id = a.alert_id

),

final as (

    select
        alert_id,
        rule_id,
        alert_type,
        severity,
        account_id,
        csm_email,
        team_manager_email,
        status,
        is_holdout,
        is_risk_alert,
        raised_on,
        raised_week,
        raised_at,
        sla_due_at,
        acknowledged_at,
        first_action_at,
        resolved_at,
        resolution_reason,
        feedback,
        was_snoozed,
        was_escalated,
        email_sent_at,
        crm_task_created_at,
        is_crm_task_completed,
        is_critical_delivered,
        cast({{ dbt.datediff('raised_at', 'first_action_at', 'minute') }} as double) / 60.0
            as hours_to_first_action,
        cast({{ dbt.datediff('raised_at', 'human_resolved_at', 'minute') }} as double) / 60.0
            as hours_to_resolution,
        case
            when first_action_at is not null and first_action_at <= sla_due_at then 'met'
            when first_action_at is not null then 'missed'
            when sla_due_at < cast({{ add_days(1, 'as_of_date') }} as timestamp) then 'missed'
            else 'pending'
        end as sla_status,
        coalesce(outcome_within_horizon,
            case
                when {{ add_days(horizon, 'raised_on') }} <= as_of_date then 'nothing'
                else 'nothing_yet'
            end) as outcome,
        outcome_date,
        {{ days_between('raised_on', 'outcome_date') }} as lead_days,
        arr_at_stake,
        case when is_save then arr_at_stake else 0.0 end as arr_saved,
        case
            when outcome_within_horizon = 'expanded' then cast(outcome_arr_delta as double)
            else 0.0
        end as arr_gained,
        case
            when outcome_within_horizon = 'churned' then arr_at_stake
            when outcome_within_horizon = 'contracted'
                then abs(cast(outcome_arr_delta as double))
            else 0.0
        end as arr_lost,
        -- Precision of risk alerts: followed by churn, or by a save a person reported.
        is_save,
        case
            when is_risk_alert
                then coalesce(outcome_within_horizon = 'churned', false)
                    or coalesce(feedback, '') = 'lost' or is_save
            else coalesce(outcome_within_horizon = 'expanded', false)
        end as is_true_positive,
        -- Judged once the horizon has passed or something decisive happened.
        (
            outcome_within_horizon is not null
            or coalesce(feedback, '') in ('saved', 'not_useful', 'lost', 'useful')
            or {{ add_days(horizon, 'raised_on') }} <= as_of_date
        ) as is_outcome_known,
        as_of_date
    from joined

)

select * from final
