with

source as (

    select * from {{ source('raw', 'landed_partitions') }}

),

renamed as (

    select
        cast(landing_date as date) as landing_date,
        cast(source as string) as source_name,
        cast(files as bigint) as files,
        cast(bytes_read as bigint) as bytes_read,
        cast(rows_read as bigint) as rows_read,
        cast(rows_loaded as bigint) as rows_loaded,
        cast(rows_quarantined as bigint) as rows_quarantined,
        cast(duplicates_dropped as bigint) as duplicates_dropped,
        cast(late_events as bigint) as late_events,
        cast(opted_out_dropped as bigint) as opted_out_dropped,
        cast(loaded_at as timestamp) as loaded_at

    from source

)

select * from renamed
