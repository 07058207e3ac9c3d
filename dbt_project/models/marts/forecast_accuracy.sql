{#-
    Accuracy of past published forecasts against actual demand, per run_date
    and horizon. Only forecast dates up to the last sales date in
    fct_sales_daily are scored; a series/day without a sales row had zero
    demand (the fact table is sparse).

    A table: forecasts are published after `dbt build`, but a run's forecasts
    are all for days after its run date, so they only become scorable on a
    later night, when this table is rebuilt anyway.
-#}

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

actuals_cutoff as (

    select max(sales_date) as last_sales_date from sales

),

scored as (

    select
        forecasts.run_date,
        forecasts.horizon,
        forecasts.model_version,
        forecasts.p10,
        forecasts.p50,
        forecasts.p90,
        coalesce(sales.quantity, 0) as actual_quantity

    from forecasts
    inner join runs
        on runs.run_date = forecasts.run_date
        and runs.run_status = 'published'
    cross join actuals_cutoff
    left join sales
        on sales.item_id = forecasts.item_id
        and sales.location_id = forecasts.location_id
        and sales.sales_date = forecasts.forecast_date
    where forecasts.forecast_date <= actuals_cutoff.last_sales_date

),

aggregated as (

    select
        run_date,
        horizon,
        max(model_version) as model_version,
        count(*) as forecast_count,
        sum(actual_quantity) as actual_quantity,
        sum(p50) as forecast_p50,
        sum(abs(p50 - actual_quantity)) as abs_error,
        avg(abs(p50 - actual_quantity)) as mae,
        avg(p50 - actual_quantity) as bias,
        case
            when sum(actual_quantity) > 0
                then sum(abs(p50 - actual_quantity)) / sum(actual_quantity)
        end as wape,
        avg(
            case
                when actual_quantity >= p10 and actual_quantity <= p90 then 1.0
                else 0.0
            end
        ) as p10_p90_coverage

    from scored
    group by
        run_date,
        horizon

),

final as (

    select * from aggregated

)

select * from final
