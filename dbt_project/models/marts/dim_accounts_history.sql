-- Slowly changing account attributes: one row per version, a new version when any attribute
-- changes between CRM snapshots (snapshots after the as-of date are not seen). An account that
-- no snapshot lists (no CRM, or not in it) still exists from its first event on: one version
-- whose attributes are all unknown (NULL), never defaults.
with

snapshots as (

    select * from {{ ref('stg_raw__accounts') }}
    where snapshot_date <= {{ as_of_date() }}

),

activity as (

    select * from {{ ref('int_account_activity_spans') }}

),

snapshot_accounts as (

    select distinct account_id from snapshots

),

event_only_accounts as (

    select
        activity.account_id,
        activity.first_activity_date
    from activity
    left join snapshot_accounts
        on activity.account_id = snapshot_accounts.account_id
    where snapshot_accounts.account_id is null

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

versions as (

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
        {{ account_segment('arr') }} as segment,
        true as has_crm_record
    from changes

),

event_only_versions as (

    select
        md5(concat_ws('|', account_id, cast(first_activity_date as string))) as account_version_id,
        account_id,
        1 as version_number,
        first_activity_date as valid_from,
        cast(null as date) as valid_to,
        cast(null as string) as account_name,
        cast(null as string) as domain,
        cast(null as string) as plan,
        cast(null as integer) as seats,
        cast(null as decimal(14, 2)) as arr,
        cast(null as date) as contract_start_date,
        cast(null as date) as renewal_date,
        cast(null as string) as csm_name,
        cast(null as string) as csm_email,
        cast(null as string) as manager_name,
        cast(null as string) as manager_email,
        cast(null as string) as industry,
        cast(null as string) as region,
        cast(null as boolean) as has_tracking_consent,
        cast(null as string) as segment,
        false as has_crm_record
    from event_only_accounts

),

final as (

    select * from versions
    union all
    select * from event_only_versions

)

select
    *,
    valid_to is null as is_current
from final
