with

source as (

    select * from {{ source('alerts', 'snoozes') }}

),

renamed as (

    select
        cast(snooze_id as string) as snooze_id,
        cast(alert_id as string) as alert_id,
        cast(rule_id as string) as rule_id,
        cast(account_id as string) as account_id,
        cast(snoozed_until as date) as snoozed_until,
        cast(actor as string) as snoozed_by,
        cast(reason as string) as snooze_reason,
        cast(created_at as timestamp) as snoozed_at

    from source

)

select * from renamed
