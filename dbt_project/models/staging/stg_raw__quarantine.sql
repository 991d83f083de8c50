with

source as (

    select * from {{ source('raw', 'quarantine') }}

),

renamed as (

    select
        cast(source as string) as source_name,
        cast(landing_date as date) as landing_date,
        cast(source_file as string) as source_file,
        cast(source_line as bigint) as source_line,
        cast(reason as string) as reason,
        cast(detail as string) as detail,
        cast(raw_record as string) as raw_record,
        cast(quarantined_at as timestamp) as quarantined_at

    from source

)

select * from renamed
