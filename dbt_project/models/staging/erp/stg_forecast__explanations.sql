with

source as (

    select * from {{ source('forecast', 'explanations') }}

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

        ---------- text
        lower(quantile) as quantile,
        feature,
        category_value,

        ---------- numerics
        cast(rank as integer) as contribution_rank,
        cast(feature_value as {{ dbt.type_float() }}) as feature_value,
        cast(contribution as {{ dbt.type_float() }}) as contribution,
        cast(share as {{ dbt.type_float() }}) as contribution_share,
        cast(base_value as {{ dbt.type_float() }}) as base_value,
        cast(prediction as {{ dbt.type_float() }}) as model_prediction

    from source

),

final as (

    select * from renamed

)

select * from final
