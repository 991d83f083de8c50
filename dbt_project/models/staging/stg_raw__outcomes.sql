with

source as (

    select * from {{ source('raw', 'outcomes') }}

),

renamed as (

    select
        cast(account_id as string) as account_id,
        lower(cast(outcome as string)) as outcome,
        cast(effective_date as date) as effective_date,
        cast(arr_delta as decimal(14, 2)) as arr_delta,
        cast(landing_date as date) as landing_date

    from source

)

select * from renamed
