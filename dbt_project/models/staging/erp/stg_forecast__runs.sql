with

source as (

    select * from {{ source('forecast', 'runs') }}

),

renamed as (

    select
        ---------- ids
        cast(run_date as date) as run_date,
        model_version,

        ---------- text
        lower(status) as run_status,
        message as run_message,

        ---------- numerics
        cast(series_count as integer) as series_count,
        cast(horizon_days as integer) as horizon_days,
        cast(rows_forecast as bigint) as rows_forecast,

        ---------- timestamps
        cast(published_at as {{ dbt.type_timestamp() }}) as published_at

    from source

),

final as (

    select * from renamed

)

select * from final
