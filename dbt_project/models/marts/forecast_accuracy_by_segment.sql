{#-
    Accuracy of each published forecast run by horizon bucket and segment, as of
    its latest scoring. The nightly monitor task rescores every run with a
    forecast date in its lookback (late and revised actuals) and appends one
    scoring per night to ops.forecast_accuracy; BI wants one answer per run, so
    this keeps the newest evaluation_date of each run. A view: the monitor writes
    after `dbt build`, and BI sees its rows as soon as they commit.
-#}
{{ config(materialized='view') }}

with

accuracy as (

    select * from {{ ref('stg_ops__forecast_accuracy') }}

),

latest_scoring as (

    select
        run_date,
        max(evaluation_date) as evaluation_date

    from accuracy
    group by run_date

),

final as (

    select
        accuracy.run_date,
        accuracy.evaluation_date,
        accuracy.model_version,
        accuracy.horizon_bucket,
        accuracy.horizon_min,
        accuracy.horizon_max,
        accuracy.segment_type,
        accuracy.segment,
        accuracy.n_forecasts,
        accuracy.actual_quantity,
        accuracy.forecast_quantity,
        accuracy.wape,
        accuracy.mase,
        accuracy.bias,
        accuracy.p10_p90_coverage,
        accuracy.last_forecast_date

    from accuracy
    inner join latest_scoring
        on latest_scoring.run_date = accuracy.run_date
        and latest_scoring.evaluation_date = accuracy.evaluation_date

)

select * from final
