-- Dormancy episodes: an account silent for `dormant_after_days` days is dormant from that day
-- until its next activity (then it is back, and a later silence is a new episode). An account
-- never active since its first day in the engagement fact counts its silence from that day.
-- Only activity visible on the run's as-of date is used, and only days up to it are dormant.
{%- set dormant_days = var('dormant_after_days') | int %}

with

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}

),

engagement as (

    select * from {{ ref('fct_account_daily_engagement') }}

),

churns as (

    -- a churned account has left: its silence after the churn is not dormancy
    select
        account_id,
        min(effective_date) as churned_date
    from {{ ref('stg_raw__outcomes') }}
    where
        outcome = 'churned'
        and effective_date <= {{ as_of_date() }}
    group by account_id

),

active_days as (

    select
        account_id,
        activity_date as seen_date,
        1 as is_activity
    from user_days
    where
        is_active
        and activity_date <= {{ as_of_date() }}
    group by account_id, activity_date

),

account_starts as (

    -- the day before an account's first day stands in for a last activity
    select
        account_id,
        {{ add_days(-1, 'min(activity_date)') }} as seen_date,
        0 as is_activity
    from engagement
    group by account_id

),

sightings as (

    select
        account_id,
        seen_date,
        max(is_activity) as is_activity
    from (
        select * from active_days
        union all
        select * from account_starts
    ) as unioned
    -- activity before an account's first engagement day (no spine yet) does not start silences
    where account_id in (select account_starts.account_id from account_starts)
    group by account_id, seen_date

),

gaps as (

    select
        account_id,
        seen_date,
        is_activity,
        lead(seen_date) over (
            partition by account_id order by seen_date asc nulls last
        ) as next_seen_date
    from sightings

),

final as (

    select
        gaps.account_id,
        case when gaps.is_activity = 1 then gaps.seen_date end as last_active_date,
        {{ add_days(1, 'gaps.seen_date') }} as inactive_since_date,
        {{ add_days(dormant_days, 'gaps.seen_date') }} as dormant_since_date,
        gaps.next_seen_date as returned_on_date,
        gaps.next_seen_date is null as is_current
    from gaps
    left join churns
        on gaps.account_id = churns.account_id
    where
        (
            (gaps.next_seen_date is null and {{ add_days(dormant_days, 'gaps.seen_date') }} <= {{ as_of_date() }})
            or {{ days_between('gaps.seen_date', 'gaps.next_seen_date') }} > {{ dormant_days }}
        )
        and (churns.churned_date is null or {{ add_days(dormant_days, 'gaps.seen_date') }} < churns.churned_date)

)

select * from final
