with

source as (

    select * from {{ source('forecast', 'forecasts') }}

),

renamed as (

    select
        ---------- ids
        cast(run_date as date) as run_date,
        item_id,
        location_id,
        model_version,

        ---------- dates
        cast(forecast_date as date) as forecast_date,
        cast(horizon as integer) as horizon,

        ---------- numerics
        cast(p10 as {{ dbt.type_float() }}) as p10,
        cast(p50 as {{ dbt.type_float() }}) as p50,
        cast(p90 as {{ dbt.type_float() }}) as p90

    from source

),

final as (

    select * from renamed

)

select * from final
