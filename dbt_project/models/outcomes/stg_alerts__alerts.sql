with

source as (

    select * from {{ source('alerts', 'alerts') }}

),

renamed as (

    select
        cast(alert_id as string) as alert_id,
        cast(rule_id as string) as rule_id,
        cast(alert_type as string) as alert_type,
        cast(account_id as string) as account_id,
        cast(severity as string) as severity,
        cast(status as string) as status,
        cast(first_raised_on as date) as raised_on,
        cast(last_seen_on as date) as last_seen_on,
        cast(arr as double) as arr,
        cast(probability as double) as probability,
        lower(cast(owner_email as string)) as owner_email,
        lower(cast(escalation_email as string)) as escalation_email,
        cast(sla_due_at as timestamp) as sla_due_at,
        cast(snoozed_until as date) as snoozed_until,
        cast(acknowledged_at as timestamp) as acknowledged_at,
        cast(resolved_at as timestamp) as resolved_at,
        cast(resolution_reason as string) as resolution_reason,
        cast(feedback as string) as feedback,
        coalesce(cast(is_holdout as boolean), false) as is_holdout,
        coalesce(cast(in_digest_summary as boolean), false) as is_in_digest_summary

    from source

)

select * from renamed
