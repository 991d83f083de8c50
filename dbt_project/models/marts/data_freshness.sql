-- One row per calendar day up to the as-of date: did that day's data land (a landing folder or a
-- day of the loaded history), how many events carry that date, and how many of them arrived late
-- (on a later landing day).
with

calendar as (

    select calendar_date from {{ ref('int_days_enumerated') }}

),

landed_partitions as (

    select * from {{ ref('stg_raw__landed_partitions') }}
    where
        source_name in ('events', 'history')
        and landing_date <= {{ as_of_date() }}

),

events as (

    select
        event_date,
        landing_date
    from {{ ref('stg_raw__events') }}
    where landing_date <= {{ as_of_date() }}

),

landed_days as (

    select
        landing_date,
        max(loaded_at) as landed_at,
        max(case when source_name = 'history' then 1 else 0 end) = 1 as is_history_day
    from landed_partitions
    group by landing_date

),

events_by_day as (

    select
        event_date,
        cast(count(*) as bigint) as events_loaded,
        cast(count(case when landing_date > event_date then 1 end) as bigint) as late_events_after
    from events
    group by event_date

),

final as (

    select
        calendar.calendar_date as activity_date,
        landed_days.landing_date is not null as is_landed,
        coalesce(events_by_day.events_loaded, 0) as events_loaded,
        coalesce(events_by_day.late_events_after, 0) as late_events_after,
        landed_days.landed_at,
        coalesce(landed_days.is_history_day, false) as is_history_day
    from calendar
    left join landed_days
        on calendar.calendar_date = landed_days.landing_date
    left join events_by_day
        on calendar.calendar_date = events_by_day.event_date

)

select * from final
