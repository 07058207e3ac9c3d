-- forecast_freshness must always return exactly one row (also before any run).

with

row_count as (

    select count(*) as n_rows from {{ ref('forecast_freshness') }}

),

final as (

    select * from row_count where n_rows <> 1

)

select * from final
