-- Feature usage per account per day per feature, tagged with the catalog's premium flag.
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

catalog as (

    select * from {{ ref('feature_catalog') }}

),

feature_events as (

    select * from events
    where
        event_name = 'feature_used'
        and feature_name is not null
        and event_date <= {{ as_of_date() }}
        and landing_date <= {{ as_of_date() }}

),

per_feature_day as (

    select
        account_id,
        event_date as activity_date,
        feature_name,
        cast(count(*) as bigint) as feature_events,
        cast(count(distinct user_id) as bigint) as feature_users
    from feature_events
    group by account_id, event_date, feature_name

),

final as (

    select
        per_feature_day.account_id,
        per_feature_day.activity_date,
        per_feature_day.feature_name,
        coalesce(catalog.is_premium, false) as is_premium,
        catalog.feature is not null as is_catalog_feature,
        per_feature_day.feature_events,
        per_feature_day.feature_users
    from per_feature_day
    left join catalog
        on per_feature_day.feature_name = catalog.feature

)

select * from final
