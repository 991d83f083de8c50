with

source as (

    select * from {{ source('alerts', 'audit_log') }}

),

renamed as (

    select
        cast(event_id as string) as event_id,
        cast(alert_id as string) as alert_id,
        cast(event as string) as event_name,
        cast(from_status as string) as from_status,
        cast(to_status as string) as to_status,
        cast(actor as string) as actor,
        cast(reason as string) as reason,
        cast(event_at as timestamp) as event_at,
        -- A person or a connector (CRM task completed), not the engine, the SLA timer or expiry.
        (cast(actor as string) not like 'system:%') as is_human_action

    from source

)

select * from renamed
