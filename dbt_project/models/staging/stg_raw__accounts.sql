with

source as (

    select * from {{ source('raw', 'accounts') }}

),

renamed as (

    select
        cast(account_id as string) as account_id,
        cast(snapshot_date as date) as snapshot_date,
        cast(account_name as string) as account_name,
        cast(domain as string) as domain,
        lower(cast(plan as string)) as plan,
        cast(seats as integer) as seats,
        cast(arr as decimal(14, 2)) as arr,
        cast(contract_start_date as date) as contract_start_date,
        cast(renewal_date as date) as renewal_date,
        cast(csm_name as string) as csm_name,
        cast(csm_email as string) as csm_email,
        cast(manager_name as string) as manager_name,
        cast(manager_email as string) as manager_email,
        cast(industry as string) as industry,
        cast(region as string) as region,
        cast(tracking_consent as boolean) as has_tracking_consent,
        cast(landing_date as date) as landing_date

    from source

)

select * from renamed
