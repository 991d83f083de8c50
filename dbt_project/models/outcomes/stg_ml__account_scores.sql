with

source as (

    select * from {{ source('ml', 'account_scores') }}

),

renamed as (

    select
        cast(account_id as string) as account_id,
        cast(as_of_date as date) as as_of_date,
        cast(model_name as string) as model_name,
        cast(probability as double) as probability,
        cast(percentile as double) as percentile,
        cast(band as string) as band

    from source

)

select * from renamed
