{#-
    BI contract: the forecasts of the latest *published* run.

    A view (not a table) on purpose: the pipeline writes forecasts and marks
    the run published after `dbt build`, and BI must switch to the new run at
    the moment it is marked published, atomically, without another dbt run.
-#}
{{ config(materialized='view') }}

with

runs as (

    select * from {{ ref('stg_forecast__runs') }}

),

forecasts as (

    select * from {{ ref('stg_forecast__forecasts') }}

),

items as (

    select * from {{ ref('dim_item') }}

),

locations as (

    select * from {{ ref('dim_location') }}

),

latest_published_run as (

    select
        run_date,
        published_at

    from runs
    where
        run_status = 'published'
        and run_date = (
            select max(published_runs.run_date)
            from runs as published_runs
            where published_runs.run_status = 'published'
        )

),

joined as (

    select
        forecasts.item_id,
        forecasts.location_id,
        forecasts.forecast_date,
        forecasts.horizon,
        forecasts.p10,
        forecasts.p50,
        forecasts.p90,
        forecasts.model_version,
        forecasts.run_date,
        latest_published_run.published_at,
        items.item_name,
        items.category,
        locations.location_name

    from forecasts
    inner join latest_published_run
        on latest_published_run.run_date = forecasts.run_date
    left join items
        on items.item_id = forecasts.item_id
    left join locations
        on locations.location_id = forecasts.location_id

),

final as (

    select * from joined

)

select * from final
