{#-
    BI contract: why the latest *published* forecasts are what they are.

    A view, like forecast_latest, so it switches to a new run at the moment the
    run is marked published. The labels mirror nightcast.forecasting.labels.feature_label
    for the nightly (daily) model; tests/forecasting/test_feature_labels.py runs this
    CASE on every feature the model builds and compares.
-#}
{{ config(materialized='view') }}

with

explanations as (

    select * from {{ ref('stg_forecast__explanations') }}

),

-- The latest published run's forecasts with names: forecast_latest decides which run.
latest as (

    select * from {{ ref('forecast_latest') }}

),

labelled as (

    select
        *,
        case
            when feature = 'horizon' then 'days ahead'
            when feature = 'log_scale' then 'recent level (28-day mean)'
            when feature = 'lag_1' then 'demand on the run date'
            when feature = 'last_known' then 'last known demand'
            when feature = 'age' then 'days since first sale'
            when feature = 'since_sale' then 'days since last sale'
            when feature = 'year_ago_level' then 'level a year before the run date'
            when feature = 'month' then 'month'
            when feature = 'week_of_year' then 'week of year'
            when feature = 'day_of_week' then 'day of week'
            when feature = 'day_of_month' then 'day of month'
            when feature = 'weeks_to_xmas' then 'weeks to Christmas'
            when feature = 'on_promo' then 'on promotion'
            when feature = 'is_holiday' then 'public holiday'
            when feature = 'item_id' then 'item'
            when feature = 'location_id' then 'location'
            when feature = 'department' then 'department'
            when feature = 'category' then 'category'
            when feature = 'location_type' then 'location type'
            when feature = 'country' then 'country'
            when feature = 'season_mean_1' then 'same weekday, last week'
            when substr(feature, 1, 12) = 'season_mean_'
                then 'same weekday, last ' || substr(feature, 13) || ' weeks'
            when substr(feature, 1, 5) = 'mean_'
                then 'recent ' || substr(feature, 6) || '-day mean'
            when substr(feature, 1, 4) = 'std_'
                then substr(feature, 5) || '-day variability'
            when substr(feature, 1, 10) = 'zero_frac_'
                then 'share of zero-demand days (' || substr(feature, 11) || ' days)'
            when substr(feature, 1, 11) = 'known_frac_'
                then 'share of days with data (' || substr(feature, 12) || ' days)'
            when substr(feature, 1, 4) = 'ewm_'
                then 'exponentially weighted mean of demand (α ' || substr(feature, 5) || ')'
            when substr(feature, 1, 9) = 'year_ago_'
                then 'demand a year before the forecast date (' || substr(feature, 10) || '-day mean)'
            else feature
        end as feature_label

    from explanations

),

joined as (

    select
        labelled.item_id,
        labelled.location_id,
        labelled.forecast_date,
        labelled.horizon,
        labelled.quantile,
        labelled.contribution_rank,
        labelled.feature,
        labelled.feature_label,
        labelled.feature_value,
        labelled.category_value,
        labelled.contribution,
        labelled.contribution_share,
        labelled.base_value,
        labelled.model_prediction,
        latest.p50,
        labelled.model_version,
        labelled.run_date,
        latest.published_at,
        latest.item_name,
        latest.category,
        latest.location_name

    from labelled
    inner join latest
        on
            latest.run_date = labelled.run_date
            and latest.item_id = labelled.item_id
            and latest.location_id = labelled.location_id
            and latest.forecast_date = labelled.forecast_date

),

final as (

    select * from joined

)

select * from final
