{#-
    Forecast vs actual history for BI: every published forecast whose date has
    passed, next to the demand that happened. A series/day without a row in
    fct_sales_daily sold nothing (the fact table is sparse), so its actual is 0.
    A view: it always reflects the actuals as loaded, so late and revised
    order lines show up the night they arrive. Stock-out days are flagged, not
    dropped: demand on them was censored, so BI can leave them out of accuracy.
-#}
{{ config(materialized='view') }}

with

runs as (

    select * from {{ ref('stg_forecast__runs') }}

),

forecasts as (

    select * from {{ ref('stg_forecast__forecasts') }}

),

sales as (

    select * from {{ ref('fct_sales_daily') }}

),

items as (

    select * from {{ ref('dim_item') }}

),

actuals_cutoff as (

    select max(sales_date) as last_sales_date from sales

),

published as (

    select
        forecasts.run_date,
        forecasts.item_id,
        forecasts.location_id,
        forecasts.forecast_date,
        forecasts.horizon,
        forecasts.model_version,
        forecasts.p10,
        forecasts.p50,
        forecasts.p90

    from forecasts
    inner join runs
        on runs.run_date = forecasts.run_date
        and runs.run_status = 'published'
    cross join actuals_cutoff
    where forecasts.forecast_date <= actuals_cutoff.last_sales_date

),

final as (

    select
        published.run_date,
        published.item_id,
        published.location_id,
        published.forecast_date,
        published.horizon,
        published.model_version,
        items.category,
        published.p10,
        published.p50,
        published.p90,
        coalesce(sales.quantity, 0) as actual_quantity,
        published.p50 - coalesce(sales.quantity, 0) as error,
        abs(published.p50 - coalesce(sales.quantity, 0)) as abs_error,
        coalesce(sales.quantity, 0) between published.p10 and published.p90 as actual_in_p10_p90,
        coalesce(sales.is_stockout, false) as is_stockout

    from published
    left join sales
        on sales.item_id = published.item_id
        and sales.location_id = published.location_id
        and sales.sales_date = published.forecast_date
    left join items
        on items.item_id = published.item_id

)

select * from final
