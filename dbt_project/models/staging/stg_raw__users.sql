with

source as (

    select * from {{ source('raw', 'users') }}

),

renamed as (

    select
        cast(user_id as string) as user_id,
        cast(snapshot_date as date) as snapshot_date,
        cast(account_id as string) as account_id,
        cast(email as string) as email,
        lower(cast(role as string)) as user_role,
        cast(created_at as timestamp) as created_at,
        cast(deactivated_at as timestamp) as deactivated_at,
        cast(opted_out as boolean) as is_opted_out,
        cast(landing_date as date) as landing_date

    from source

)

select * from renamed
