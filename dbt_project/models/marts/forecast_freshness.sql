{#-
    One row saying whether BI is looking at fresh forecasts. A view, so it
    reflects forecast.runs as soon as the pipeline updates it.

    Stale when: no run has been recorded; the most recent run in forecast.runs
    is not published (it failed, or is still running); or, when the pipeline
    passes var expected_run_date, the latest published run is older than it.
    Nothing here reads the wall clock; note the var is baked into the view at
    build time.
-#}
{{ config(materialized='view') }}

{%- set expected_run_date = var('expected_run_date', none) -%}

with

runs as (

    select * from {{ ref('stg_forecast__runs') }}

),

latest_dates as (

    -- aggregates without group by: always exactly one row, even with no runs
    select
        max(run_date) as latest_attempted_run_date,
        max(case when run_status = 'published' then run_date end) as latest_published_run_date,
        {% if expected_run_date %}
        cast('{{ expected_run_date }}' as date) as expected_run_date
        {% else %}
        cast(null as date) as expected_run_date
        {% endif %}

    from runs

),

joined as (

    select
        latest_dates.latest_published_run_date,
        published_run.published_at,
        published_run.model_version as published_model_version,
        latest_dates.latest_attempted_run_date,
        attempted_run.run_status as latest_attempted_status,
        attempted_run.run_message as latest_attempted_message,
        latest_dates.expected_run_date

    from latest_dates
    left join runs as published_run
        on published_run.run_date = latest_dates.latest_published_run_date
    left join runs as attempted_run
        on attempted_run.run_date = latest_dates.latest_attempted_run_date

),

final as (

    select
        latest_published_run_date,
        published_at,
        published_model_version,
        latest_attempted_run_date,
        latest_attempted_status,
        latest_attempted_message,
        expected_run_date,

        case
            when latest_attempted_run_date is null then true
            when latest_attempted_status <> 'published' then true
            when expected_run_date is not null
                and latest_published_run_date < expected_run_date then true
            else false
        end as is_stale,

        case
            when latest_attempted_run_date is null
                then 'no forecast run has been recorded'
            when latest_attempted_status <> 'published'
                then 'latest run ' || cast(latest_attempted_run_date as {{ dbt.type_string() }})
                    || ' is ' || latest_attempted_status
                    || coalesce(': ' || latest_attempted_message, '')
                    || '; BI shows run '
                    || coalesce(cast(latest_published_run_date as {{ dbt.type_string() }}), '(none)')
            when expected_run_date is not null
                and latest_published_run_date < expected_run_date
                then 'latest published run ' || cast(latest_published_run_date as {{ dbt.type_string() }})
                    || ' is older than expected run date '
                    || cast(expected_run_date as {{ dbt.type_string() }})
        end as stale_reason

    from joined

)

select * from final
