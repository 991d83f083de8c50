with

source as (

    select * from {{ source('ml', 'anomalies') }}

),

renamed as (

    select
        cast(account_id as string) as account_id,
        cast(activity_date as date) as activity_date,
        cast(metric as string) as metric,
        cast(robust_z as double) as robust_z

    from source

)

select * from renamed
