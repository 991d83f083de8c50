-- The first day each event type appears in the log (up to the as-of date). A measure built on
-- an event type the log has never carried before a day is unknown (NULL) on that day, not zero:
-- an export without session events has no logins to count.
with

events as (

    select
        event_name,
        event_date,
        duration_seconds
    from {{ ref('stg_raw__events') }}
    where
        event_date <= {{ as_of_date() }}
        and landing_date <= {{ as_of_date() }}

),

final as (

    select
        event_name,
        min(event_date) as first_event_date
    from events
    group by event_name
    union all
    -- session minutes need ended sessions that carry a duration
    select
        'session_ended_with_duration' as event_name,
        min(event_date) as first_event_date
    from events
    where event_name = 'session_ended' and duration_seconds is not null

)

select * from final
