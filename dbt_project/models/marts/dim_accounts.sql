-- One row per account: its attributes as of the as-of date, and whether it has churned.
with

history as (

    select * from {{ ref('dim_accounts_history') }}

),

activity as (

    select * from {{ ref('int_account_activity_spans') }}

),

outcomes as (

    select * from {{ ref('stg_raw__outcomes') }}
    where effective_date <= {{ as_of_date() }}

),

first_versions as (

    select
        account_id,
        valid_from as first_seen_date
    from history
    where version_number = 1

),

dormancy as (

    -- the current dormancy episode, if the account is dormant on the as-of date
    select
        account_id,
        dormant_since_date
    from {{ ref('account_dormancy') }}
    where is_current

),

churns as (

    select
        account_id,
        min(effective_date) as churned_date
    from outcomes
    where outcome = 'churned'
    group by account_id

),

final as (

    select
        history.account_id,
        history.account_name,
        history.domain,
        history.plan,
        history.seats,
        history.arr,
        history.contract_start_date,
        history.renewal_date,
        history.csm_name,
        history.csm_email,
        history.manager_name,
        history.manager_email,
        history.industry,
        history.region,
        history.has_tracking_consent as tracking_consent,
        history.segment,
        history.has_crm_record,
        first_versions.first_seen_date,
        activity.first_activity_date,
        activity.last_activity_date,
        history.valid_from as attributes_valid_from,
        churns.churned_date,
        churns.churned_date is not null as is_churned,
        case when churns.churned_date is null then dormancy.dormant_since_date end as dormant_since_date,
        dormancy.account_id is not null and churns.churned_date is null as is_dormant
    from history
    inner join first_versions
        on history.account_id = first_versions.account_id
    left join activity
        on history.account_id = activity.account_id
    left join churns
        on history.account_id = churns.account_id
    left join dormancy
        on history.account_id = dormancy.account_id
    where history.is_current

)

select * from final
