-- Sessions and activity per user per day, with the user's role on that day.
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

    -- filtered to the batch's days by dbt (stg_raw__events has event_time = event_date)
    select * from {{ ref('stg_raw__events') }}

),

users as (

    select
        user_id,
        snapshot_date,
        user_role
    from {{ ref('stg_raw__users') }}
    where snapshot_date <= {{ as_of_date() }}

),

visible_events as (

    -- only what had happened and had arrived by the as-of date; events without a user cannot
    -- make anyone active (they still count in the account-level document and feature models)
    select * from events
    where
        user_id is not null
        and event_date <= {{ as_of_date() }}
        and landing_date <= {{ as_of_date() }}

),

per_user_day as (

    select
        account_id,
        user_id,
        event_date as activity_date,
        cast(count(case when event_name = 'session_started' then 1 end) as bigint) as sessions,
        cast(
            coalesce(sum(case when event_name = 'session_ended' then duration_seconds end), 0) / 60.0
            as decimal(12, 2)
        ) as session_minutes,
        cast(
            count(case when event_name not in ('csm_email_opened', 'csm_email_clicked') then 1 end)
            as bigint
        ) as portal_events,
        cast(count(case when event_name = 'feature_used' then 1 end) as bigint) as feature_events,
        cast(count(case when event_name = 'csm_email_opened' then 1 end) as bigint) as csm_emails_opened,
        cast(count(case when event_name = 'csm_email_clicked' then 1 end) as bigint) as csm_emails_clicked
    from visible_events
    group by account_id, user_id, event_date

),

numbered_snapshots as (

    select
        user_id,
        snapshot_date,
        user_role,
        row_number() over (
            partition by user_id order by snapshot_date asc nulls last
        ) as snapshot_number,
        lag(user_role) over (
            partition by user_id order by snapshot_date asc nulls last
        ) as previous_role
    from users
    -- only the users active in this batch: a day's batch then reads a few thousand snapshots
    where user_id in (select per_user_day.user_id from per_user_day)

),

role_periods as (

    -- weekly snapshots collapsed to the days each role held: usually one period per user, so
    -- the join below matches one row per user-day instead of every snapshot of the user. The
    -- first period also covers the days before the first snapshot.
    select
        user_id,
        user_role,
        case when snapshot_number > 1 then snapshot_date end as valid_from,
        lead(snapshot_date) over (
            partition by user_id order by snapshot_date asc nulls last
        ) as valid_to
    from numbered_snapshots
    where
        snapshot_number = 1
        or coalesce(user_role, '') != coalesce(previous_role, '')

),

final as (

    select
        md5(concat_ws(
            '|', per_user_day.account_id, per_user_day.user_id, cast(per_user_day.activity_date as string)
        )) as user_day_id,
        per_user_day.account_id,
        per_user_day.user_id,
        per_user_day.activity_date,
        coalesce(role_periods.user_role, 'unknown') as user_role,
        coalesce(role_periods.user_role = 'admin', false) as is_admin,
        per_user_day.portal_events > 0 as is_active,
        per_user_day.sessions,
        per_user_day.session_minutes,
        per_user_day.portal_events,
        per_user_day.feature_events,
        per_user_day.csm_emails_opened,
        per_user_day.csm_emails_clicked
    from per_user_day
    -- the role of the latest snapshot on or before the day (before the first one, the first)
    left join role_periods
        on
            per_user_day.user_id = role_periods.user_id
            and (role_periods.valid_from is null or per_user_day.activity_date >= role_periods.valid_from)
            and (role_periods.valid_to is null or per_user_day.activity_date < role_periods.valid_to)

)

select * from final
