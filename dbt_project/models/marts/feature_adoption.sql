-- Per account and catalog feature, as of the as-of date: first/last use and the last 28 days
-- against the 28 before. Features an account never used are listed too (adoption gaps).
with

catalog as (

    select * from {{ ref('feature_catalog') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}
    where not is_churned

),

feature_days as (

    select * from {{ ref('int_feature_usage_aggregated') }}
    where activity_date <= {{ as_of_date() }}

),

events as (

    select * from {{ ref('stg_raw__events') }}
    where
        event_name = 'feature_used'
        and event_date <= {{ as_of_date() }}
        and event_date >= {{ add_days(-27, as_of_date()) }}
        and landing_date <= {{ as_of_date() }}

),

usage as (

    select
        account_id,
        feature_name,
        min(activity_date) as first_used_date,
        max(activity_date) as last_used_date,
        cast(sum(case
            when activity_date >= {{ add_days(-27, as_of_date()) }} then feature_events else 0
        end) as bigint) as events_28d,
        cast(sum(case
            when
                activity_date < {{ add_days(-27, as_of_date()) }}
                and activity_date >= {{ add_days(-55, as_of_date()) }}
                then feature_events
            else 0
        end) as bigint) as events_prev_28d
    from feature_days
    group by account_id, feature_name

),

users_28d as (

    -- distinct users need the event grain: daily distinct counts do not add up
    select
        account_id,
        feature_name,
        cast(count(distinct user_id) as bigint) as users_28d
    from events
    group by account_id, feature_name

),

final as (

    select
        accounts.account_id,
        catalog.feature,
        catalog.is_premium,
        catalog.category,
        usage.first_used_date,
        usage.last_used_date,
        coalesce(users_28d.users_28d, 0) as users_28d,
        coalesce(usage.events_28d, 0) as events_28d,
        coalesce(usage.events_prev_28d, 0) as events_prev_28d,
        cast(coalesce(usage.events_28d, 0) - coalesce(usage.events_prev_28d, 0) as double)
        / nullif(usage.events_prev_28d, 0) as trend,
        usage.first_used_date is not null as is_adopted
    from accounts
    cross join catalog
    left join usage
        on
            accounts.account_id = usage.account_id
            and catalog.feature = usage.feature_name
    left join users_28d
        on
            accounts.account_id = users_28d.account_id
            and catalog.feature = users_28d.feature_name

)

select * from final
