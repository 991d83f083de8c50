with

source as (

    select * from {{ source('raw', 'events') }}

),

renamed as (

    select
        cast(message_id as string) as event_id,
        cast(account_id as string) as account_id,
        cast(user_id as string) as user_id,
        -- 'Document Viewed' -> 'document_viewed': canonical snake names downstream
        lower(replace(trim(event_name), ' ', '_')) as event_name,
        cast(event_at as timestamp) as event_at,
        cast(event_date as date) as event_date,
        cast(session_id as string) as session_id,
        cast(document_id as string) as document_id,
        lower(cast(feature as string)) as feature_name,
        cast(duration_seconds as double) as duration_seconds,
        cast(campaign_id as string) as campaign_id,
        cast(landing_date as date) as landing_date,
        cast(loaded_at as timestamp) as loaded_at

    from source

)

select * from renamed
