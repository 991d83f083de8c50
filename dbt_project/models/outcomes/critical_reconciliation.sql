{#-
    Zero missed critical alerts, recomputed from the marts: for every fully landed day, which
    (account, critical rule) pairs held (the rules come in as var critical_rules, made from
    config/rules.yml by alerts.reconcile), joined to the alert that covered the day and to the
    messages sent about it. A pair with no covering alert, or an alert nobody was told about,
    and no recorded exemption, is missed.
-#}
{%- set rules = var('critical_rules', []) -%}

with

health as (

    select * from {{ ref('account_health') }}

),

freshness as (

    select
        activity_date as as_of_date,
        min(case when is_landed then 1 else 0 end) = 1 as is_day_landed
    from {{ ref('data_freshness') }}
    group by activity_date

),

scores as (

    select
        account_id,
        as_of_date,
        max(case when model_name = 'churn' then probability end) as churn_probability,
        max(case when model_name = 'churn' then percentile end) as churn_percentile,
        max(case when model_name = 'churn' then band end) as churn_band,
        max(case when model_name = 'expansion' then probability end) as expansion_probability,
        max(case when model_name = 'expansion' then percentile end) as expansion_percentile,
        max(case when model_name = 'expansion' then band end) as expansion_band
    from {{ ref('stg_ml__account_scores') }}
    group by account_id, as_of_date

),

anomalies as (

    select
        account_id,
        activity_date as as_of_date,
        count(*) as anomaly_count,
        count(case when robust_z < 0 then 1 end) as anomaly_drop_count,
        min(robust_z) as anomaly_min_z,
        max(robust_z) as anomaly_max_z
    from {{ ref('stg_ml__anomalies') }}
    group by account_id, activity_date

),

accounts as (

    select account_id, tracking_consent from {{ ref('dim_accounts') }}

),

alerts as (

    select * from {{ ref('stg_alerts__alerts') }}

),

audit as (

    select * from {{ ref('stg_alerts__audit_log') }}

),

snoozes as (

    select * from {{ ref('stg_alerts__snoozes') }}

),

outbox as (

    select * from {{ ref('stg_ops__outbox') }}

),

-- The engine's gate: complete data, a landed day, a live (not dormant) account.
evaluated as (

    select
        h.*,
        s.churn_probability,
        s.churn_percentile,
        s.churn_band,
        s.expansion_probability,
        s.expansion_percentile,
        s.expansion_band,
        coalesce(a.anomaly_count, 0) as anomaly_count,
        coalesce(a.anomaly_drop_count, 0) as anomaly_drop_count,
        a.anomaly_min_z,
        a.anomaly_max_z,
        f.is_day_landed as day_is_landed
    from health as h
    inner join freshness as f on h.as_of_date = f.as_of_date
    left join scores as s on h.account_id = s.account_id and h.as_of_date = s.as_of_date
    left join anomalies as a on h.account_id = a.account_id and h.as_of_date = a.as_of_date
    where f.is_day_landed
        and coalesce(h.is_data_complete, false)
        and not coalesce(h.is_dormant, false)

),

held as (

    {%- for rule in rules %}
    select
        as_of_date,
        account_id,
        '{{ rule.rule_id }}' as rule_id,
        {{ rule.cooldown_days }} as cooldown_days
    from evaluated
    where coalesce({{ rule.condition }}, false)
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
    {%- if not rules %}
    select
        cast(null as date) as as_of_date,
        cast(null as string) as account_id,
        cast(null as string) as rule_id,
        0 as cooldown_days
    from evaluated
    where 1 = 0
    {%- endif %}

),

-- An alert covers a day from the day it was raised to the last day it was seen holding.
covered as (

    select
        h.as_of_date,
        h.account_id,
        h.rule_id,
        max(a.alert_id) as alert_id,
        max(case when a.is_holdout then 1 else 0 end) = 1 as is_holdout
    from held as h
    inner join alerts as a
        on h.account_id = a.account_id
        and h.rule_id = a.rule_id
        and h.as_of_date >= a.raised_on
        and h.as_of_date <= a.last_seen_on
    group by h.as_of_date, h.account_id, h.rule_id

),

person_resolved as (

    select
        a.alert_id,
        a.rule_id,
        a.account_id,
        a.last_seen_on,
        min(l.event_at) as resolved_at,
        min(l.actor) as resolved_by
    from alerts as a
    inner join audit as l on a.alert_id = l.alert_id
    where l.event_name = 'resolved' and l.is_human_action
    group by a.alert_id, a.rule_id, a.account_id, a.last_seen_on

),

cooling as (

    select distinct h.as_of_date, h.account_id, h.rule_id
    from held as h
    inner join person_resolved as p
        on h.account_id = p.account_id
        and h.rule_id = p.rule_id
        and h.as_of_date > p.last_seen_on
        and h.as_of_date < {{ dbt.dateadd('day', 'h.cooldown_days', 'least(cast(p.resolved_at as date), ' ~ dbt.dateadd('day', 1, 'p.last_seen_on') ~ ')') }}

),

snoozed as (

    select distinct h.as_of_date, h.account_id, h.rule_id
    from held as h
    inner join snoozes as s
        on h.account_id = s.account_id
        and h.rule_id = s.rule_id
        and h.as_of_date <= s.snoozed_until

),

told as (

    select
        alert_id,
        max(case when delivery_status = 'sent' then 1 else 0 end) = 1 as is_delivered,
        max(case when delivery_status in ('pending', 'failed') then 1 else 0 end) = 1
            as is_in_flight
    from outbox
    where alert_id is not null
        and (
            idempotency_key like 'critical:%'
            or idempotency_key like 'escalation:%'
            or idempotency_key like 'failover:%'
        )
    group by alert_id

),

final as (

    select
        {{ outcome_row_key(['h.as_of_date', 'h.account_id', 'h.rule_id']) }}
            as reconciliation_id,
        h.as_of_date,
        cast({{ dbt.date_trunc('week', 'h.as_of_date') }} as date) as week_start,
        h.account_id,
        h.rule_id,
        c.alert_id,
        c.alert_id is not null as has_alert,
        coalesce(t.is_delivered, false) as is_delivered,
        coalesce(t.is_in_flight, false) and not coalesce(t.is_delivered, false) as is_in_flight,
        case
            when ac.tracking_consent = false then 'no_tracking_consent'
            when sn.account_id is not null then 'snoozed'
            when co.account_id is not null then 'resolved_by_person'
            when c.is_holdout then 'holdout'
        end as exemption
    from held as h
    left join covered as c
        on h.as_of_date = c.as_of_date and h.account_id = c.account_id and h.rule_id = c.rule_id
    left join told as t on c.alert_id = t.alert_id
    left join accounts as ac on h.account_id = ac.account_id
    left join snoozed as sn
        on h.as_of_date = sn.as_of_date and h.account_id = sn.account_id
        and h.rule_id = sn.rule_id
    left join cooling as co
        on h.as_of_date = co.as_of_date and h.account_id = co.account_id
        and h.rule_id = co.rule_id

)

select
    *,
    exemption is null and not (has_alert and (is_delivered or is_in_flight)) as is_missed
from final
