-- Document interactions per account per day.
{{
    config(
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='activity_date',
        batch_size=var('microbatch_size'),
        begin=var('history_start'),
        lookback=5,
    )
}}

with

events as (

    select * from {{ ref('stg_raw__events') }}

),

document_events as (

    select * from events
    where event_name in (
        'document_viewed', 'document_downloaded', 'document_shared',
        'document_uploaded', 'document_commented'
    )
    and event_date <= {{ as_of_date() }}
    and landing_date <= {{ as_of_date() }}

),

final as (

    select
        account_id,
        event_date as activity_date,
        cast(count(case when event_name = 'document_viewed' then 1 end) as bigint) as docs_viewed,
        cast(count(case when event_name = 'document_downloaded' then 1 end) as bigint) as docs_downloaded,
        cast(count(case when event_name = 'document_shared' then 1 end) as bigint) as docs_shared,
        cast(count(case when event_name = 'document_uploaded' then 1 end) as bigint) as docs_uploaded,
        cast(count(case when event_name = 'document_commented' then 1 end) as bigint) as docs_commented,
        cast(count(distinct document_id) as bigint) as documents_touched,
        cast(count(distinct user_id) as bigint) as document_users
    from document_events
    group by account_id, event_date

)

select * from final
