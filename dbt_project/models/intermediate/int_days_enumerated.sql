-- One row per calendar day from the first landed events day (a landing folder or a day of the
-- loaded history) to the as-of date.
-- Built from a cross join of digits (no engine-specific series function), up to 10,000 days.
with

landed as (

    select landing_date from {{ ref('stg_raw__landed_partitions') }}
    where source_name in ('events', 'history')

),

bounds as (

    select
        min(landing_date) as first_day,
        {{ as_of_date() }} as last_day
    from landed

),

digits as (

    select 0 as n
    union all
    select 1
    union all
    select 2
    union all
    select 3
    union all
    select 4
    union all
    select 5
    union all
    select 6
    union all
    select 7
    union all
    select 8
    union all
    select 9

),

numbers as (

    select ones.n + 10 * tens.n + 100 * hundreds.n + 1000 * thousands.n as day_number
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands

),

final as (

    select {{ add_days('numbers.day_number', 'bounds.first_day') }} as calendar_date
    from numbers
    cross join bounds
    where numbers.day_number <= {{ days_between('bounds.first_day', 'bounds.last_day') }}

)

select * from final
