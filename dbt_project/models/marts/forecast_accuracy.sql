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

scored as (

    -- Every past published forecast next to its actual (zero-filled): the same rows BI reads.
    select * from {{ ref('forecast_vs_actual') }}

),

aggregated as (

    select
        run_date,
        horizon,
        max(model_version) as model_version,
        count(*) as forecast_count,
        sum(actual_quantity) as actual_quantity,
        sum(p50) as forecast_p50,
        sum(abs_error) as abs_error,
        avg(abs_error) as mae,
        avg(error) as bias,
        case
            when sum(actual_quantity) > 0 then sum(abs_error) / sum(actual_quantity)
        end as wape,
        avg(case when actual_in_p10_p90 then 1.0 else 0.0 end) as p10_p90_coverage

    from scored
    group by
        run_date,
        horizon

),

final as (

    select * from aggregated

)

select * from final
