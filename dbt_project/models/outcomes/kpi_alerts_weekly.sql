{#-
    Alert KPIs per week of raising, sliced five ways: overall, by rule, alert type, severity,
    CSM and team (manager). Each KPI is defined here once; descriptions in _outcomes.yml.
-#}
{#- Counts of alerts: a week known only from the reconciliation (conditions held, no alert was
    raised) raised zero alerts, which is known, not unknown. Medians and sums stay NULL. #}
{%- set alert_counts = [
    'alerts_raised', 'csms', 'accounts_alerted', 'holdout_alerts', 'risk_alerts_judged',
    'risk_true_positives', 'risk_false_alarms', 'critical_alerts', 'critical_not_delivered',
    'critical_held_out', 'sla_met', 'sla_decided', 'acknowledged', 'snoozed_or_not_useful',
] %}

with

outcomes as (

    select * from {{ ref('alert_outcomes') }}

),

reconciliation as (

    select * from {{ ref('critical_reconciliation') }}

),

sliced as (

    select 'overall' as dimension, 'all' as dimension_value, * from outcomes
    union all
    select 'rule' as dimension, rule_id as dimension_value, * from outcomes
    union all
    select 'alert_type' as dimension, alert_type as dimension_value, * from outcomes
    union all
    select 'severity' as dimension, severity as dimension_value, * from outcomes
    union all
    select
        'csm' as dimension, coalesce(csm_email, 'unassigned') as dimension_value, *
    from outcomes
    union all
    select
        'team' as dimension,
        coalesce(team_manager_email, 'unassigned') as dimension_value,
        *
    from outcomes

),

aggregated as (

    select
        raised_week as week_start,
        dimension,
        dimension_value,
        cast(count(*) as bigint) as alerts_raised,
        cast(count(distinct csm_email) as bigint) as csms,
        cast(count(distinct account_id) as bigint) as accounts_alerted,
        cast(count_if(is_holdout) as bigint) as holdout_alerts,
        -- quality
        cast(count_if(is_risk_alert and is_outcome_known) as bigint) as risk_alerts_judged,
        cast(count_if(is_risk_alert and is_outcome_known and is_true_positive) as bigint)
            as risk_true_positives,
        cast(count_if(is_risk_alert and is_outcome_known and not is_true_positive) as bigint)
            as risk_false_alarms,
        cast(count_if(severity = 'critical' and not is_holdout) as bigint) as critical_alerts,
        cast(count_if(severity = 'critical' and not is_holdout and not is_critical_delivered)
            as bigint) as critical_not_delivered,
        cast(count_if(severity = 'critical' and is_holdout) as bigint) as critical_held_out,
        -- responsiveness
        median(hours_to_first_action) as median_hours_to_first_action,
        median(hours_to_resolution) as median_hours_to_resolution,
        cast(count_if(sla_status = 'met') as bigint) as sla_met,
        cast(count_if(sla_status in ('met', 'missed')) as bigint) as sla_decided,
        -- impact
        cast(sum(arr_at_stake) as double) as arr_at_stake,
        cast(sum(arr_saved) as double) as arr_saved,
        cast(sum(arr_gained) as double) as arr_gained,
        cast(sum(arr_lost) as double) as arr_lost,
        -- fatigue
        cast(count_if(acknowledged_at is not null) as bigint) as acknowledged,
        cast(count_if(was_snoozed or coalesce(feedback, '') = 'not_useful') as bigint)
            as snoozed_or_not_useful
    from sliced
    group by raised_week, dimension, dimension_value

),

-- Critical conditions recomputed from the marts (critical_reconciliation), by the week of the
-- day they held: a condition that never became an alert, or an alert nobody was told about,
-- is missed, whether or not any alert was raised that week.
reconciliation_sliced as (

    select 'overall' as dimension, 'all' as dimension_value, * from reconciliation
    union all
    select 'rule' as dimension, rule_id as dimension_value, * from reconciliation
    union all
    select 'severity' as dimension, 'critical' as dimension_value, * from reconciliation

),

reconciled as (

    select
        week_start,
        dimension,
        dimension_value,
        cast(count(*) as bigint) as critical_condition_days,
        cast(count_if(is_missed) as bigint) as critical_missed,
        cast(count_if(exemption is not null) as bigint) as critical_exempt_days
    from reconciliation_sliced
    group by week_start, dimension, dimension_value

),

joined as (

    select
        coalesce(a.week_start, r.week_start) as week_start,
        coalesce(a.dimension, r.dimension) as dimension,
        coalesce(a.dimension_value, r.dimension_value) as dimension_value,
        a.* except (week_start, dimension, dimension_value, {{ alert_counts | join(', ') }}),
        {%- for column in alert_counts %}
        coalesce(a.{{ column }}, 0) as {{ column }},
        {%- endfor %}
        coalesce(r.critical_condition_days, 0) as critical_condition_days,
        coalesce(r.critical_missed, 0) as critical_missed,
        coalesce(r.critical_exempt_days, 0) as critical_exempt_days
    from aggregated as a
    full outer join reconciled as r
        on a.week_start = r.week_start
        and a.dimension = r.dimension
        and a.dimension_value = r.dimension_value

),

final as (

    select
        {{ outcome_row_key(['week_start', 'dimension', 'dimension_value']) }} as kpi_row_id,
        *,
        risk_true_positives / nullif(cast(risk_alerts_judged as double), 0) as risk_precision,
        risk_false_alarms / nullif(cast(risk_alerts_judged as double), 0) as false_alarm_rate,
        critical_not_delivered = 0 and critical_missed = 0
            as is_every_critical_delivered,
        sla_met / nullif(cast(sla_decided as double), 0) as sla_attainment,
        alerts_raised / nullif(cast(csms as double), 0) as alerts_per_csm,
        acknowledged / nullif(cast(alerts_raised as double), 0) as share_acknowledged,
        snoozed_or_not_useful / nullif(cast(alerts_raised as double), 0)
            as share_snoozed_or_not_useful
    from joined

)

select * from final
