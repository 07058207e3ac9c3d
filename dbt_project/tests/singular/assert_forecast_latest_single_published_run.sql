-- forecast_latest must show exactly one run, and it must be published.

with

latest as (

    select * from {{ ref('forecast_latest') }}

),

runs as (

    select * from {{ ref('stg_forecast__runs') }}

),

run_counts as (

    select count(distinct run_date) as n_runs from latest

),

unpublished_rows as (

    select latest.run_date
    from latest
    left join runs
        on runs.run_date = latest.run_date
    where runs.run_status is null or runs.run_status <> 'published'

),

final as (

    select 'more than one run' as failure from run_counts where n_runs > 1
    union all
    select 'unpublished run' as failure from unpublished_rows

)

select * from final
