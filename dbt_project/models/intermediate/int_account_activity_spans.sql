-- Each account's first and last event day up to the as-of date, from the event log itself:
-- where no CRM snapshot lists an account, these days are all that is known about it.
with

events as (

    select
        account_id,
        event_date
    from {{ ref('stg_raw__events') }}
    where
        event_date <= {{ as_of_date() }}
        and landing_date <= {{ as_of_date() }}

),

final as (

    select
        account_id,
        min(event_date) as first_activity_date,
        max(event_date) as last_activity_date
    from events
    group by account_id

)

select * from final
