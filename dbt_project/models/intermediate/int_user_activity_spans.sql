-- Each user's first and last active day up to the as-of date (for champion/admin follow-up).
with

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}

),

final as (

    select
        user_id,
        max(account_id) as account_id,
        max(case when is_admin then 1 else 0 end) = 1 as has_been_admin,
        min(case when is_active then activity_date end) as first_active_date,
        max(case when is_active then activity_date end) as last_active_date,
        cast(count(case when is_active then 1 end) as bigint) as active_days
    from user_days
    where activity_date <= {{ as_of_date() }}
    group by user_id

)

select * from final
