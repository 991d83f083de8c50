with

source as (

    select * from {{ source('ops', 'outbox') }}

),

renamed as (

    select
        cast(delivery_id as string) as delivery_id,
        cast(idempotency_key as string) as idempotency_key,
        cast(channel as string) as channel,
        cast(alert_id as string) as alert_id,
        cast(status as string) as delivery_status,
        cast(remote_status as string) as remote_status,
        cast(sent_at as timestamp) as sent_at,
        cast(updated_at as timestamp) as updated_at

    from source

)

select * from renamed
