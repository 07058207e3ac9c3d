with

source as (

    select * from {{ source('ops', 'forecast_accuracy') }}

),

renamed as (

    select
        ---------- ids
        cast(evaluation_date as date) as evaluation_date,
        cast(run_date as date) as run_date,
        model_version,
        horizon_bucket,
        segment_type,
        segment,

        ---------- numerics
        cast(horizon_min as integer) as horizon_min,
        cast(horizon_max as integer) as horizon_max,
        cast(n_forecasts as bigint) as n_forecasts,
        cast(actual_quantity as double precision) as actual_quantity,
        cast(forecast_quantity as double precision) as forecast_quantity,
        cast(abs_error as double precision) as abs_error,
        cast(wape as double precision) as wape,
        cast(mase as double precision) as mase,
        cast(bias as double precision) as bias,
        cast(p10_p90_coverage as double precision) as p10_p90_coverage,

        ---------- dates
        cast(last_forecast_date as date) as last_forecast_date

    from source

),

final as (

    select * from renamed

)

select * from final
