-- What the user snapshots say about each account's roles, up to the as-of date: whether any of
-- its users has a known role, and whether any is an admin. Without user snapshots nothing is
-- known, so admin measures are NULL (unknown), not zero.
with

users as (

    select
        account_id,
        user_role
    from {{ ref('stg_raw__users') }}
    where snapshot_date <= {{ as_of_date() }}

),

final as (

    select
        account_id,
        max(case when user_role is not null then 1 else 0 end) = 1 as has_user_roles,
        max(case when user_role = 'admin' then 1 else 0 end) = 1 as has_admin
    from users
    group by account_id

)

select * from final
