-- Slowly changing account attributes: one row per version, a new version when any attribute
-- changes between CRM snapshots (snapshots after the as-of date are not seen).
with

snapshots as (

    select * from {{ ref('stg_raw__accounts') }}
    where snapshot_date <= {{ as_of_date() }}

),

hashed as (

    select
        *,
        md5(concat_ws(
            '|',
            coalesce(account_name, ''), coalesce(domain, ''), coalesce(plan, ''),
            coalesce(cast(seats as string), ''), coalesce(cast(arr as string), ''),
            coalesce(cast(contract_start_date as string), ''),
            coalesce(cast(renewal_date as string), ''),
            coalesce(csm_name, ''), coalesce(csm_email, ''),
            coalesce(manager_name, ''), coalesce(manager_email, ''),
            coalesce(industry, ''), coalesce(region, ''),
            coalesce(cast(has_tracking_consent as string), '')
        )) as attributes_hash
    from snapshots

),

compared as (

    select
        *,
        lag(attributes_hash) over (
            partition by account_id order by snapshot_date asc nulls last
        ) as previous_attributes_hash
    from hashed

),

changes as (

    select * from compared
    where
        previous_attributes_hash is null
        or previous_attributes_hash != attributes_hash

),

final as (

    select
        md5(concat_ws('|', account_id, cast(snapshot_date as string))) as account_version_id,
        account_id,
        cast(row_number() over (
            partition by account_id order by snapshot_date asc nulls last
        ) as integer) as version_number,
        snapshot_date as valid_from,
        lead(snapshot_date) over (
            partition by account_id order by snapshot_date asc nulls last
        ) as valid_to,
        account_name,
        domain,
        plan,
        seats,
        arr,
        contract_start_date,
        renewal_date,
        csm_name,
        csm_email,
        manager_name,
        manager_email,
        industry,
        region,
        has_tracking_consent,
        {{ account_segment('arr') }} as segment
    from changes

)

select
    *,
    valid_to is null as is_current
from final
