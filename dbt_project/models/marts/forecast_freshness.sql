{#-
    One row saying whether BI is looking at fresh forecasts. A view: it reads
    forecast.runs and the clock when it is queried, not when it was built.

    expected_run_date is the night that should have been published by now:
    the latest business day D whose publish deadline (NIGHTCAST_PUBLISH_DEADLINE,
    default 06:30, on D+1 in NIGHTCAST_TIMEZONE, default UTC) has passed - the
    night `nightcast deadline-check` alerts about. Before the deadline the
    previous night is still the one due, so BI is not told "stale" while
    tonight's run is on time.

    Stale when: no run has been recorded; the latest published run is older
    than expected_run_date (whether that night failed or never ran at all,
    e.g. the scheduler was down); or the most recent run is not published (it
    failed or is still running), even before its deadline.

    The time zone and deadline are read from the environment when the view is
    built (the deployment's settings, the same variables the pipeline reads);
    a changed setting takes effect at the next dbt build.
-#}
{{ config(materialized='view') }}

{%- set timezone = env_var('NIGHTCAST_TIMEZONE', '') or 'UTC' -%}
{%- if timezone not in modules.pytz.all_timezones_set -%}
    {{ exceptions.raise_compiler_error(
        "NIGHTCAST_TIMEZONE must be an IANA time zone name such as Europe/Berlin, not '"
        ~ timezone ~ "'"
    ) }}
{%- endif -%}
{%- set deadline = (env_var('NIGHTCAST_PUBLISH_DEADLINE', '') or '06:30') | trim -%}
{%- set hh_mm = modules.re.fullmatch('([01][0-9]|2[0-3]):([0-5][0-9])(:00)?', deadline) -%}
{%- if not hh_mm -%}
    {{ exceptions.raise_compiler_error(
        "NIGHTCAST_PUBLISH_DEADLINE must be HH:MM, not '" ~ deadline ~ "'"
    ) }}
{%- endif -%}
{%- set deadline = hh_mm.group(1) ~ ':' ~ hh_mm.group(2) -%}
{%- set deadline_minutes = hh_mm.group(1) | int * 60 + hh_mm.group(2) | int -%}

with

runs as (

    select * from {{ ref('stg_forecast__runs') }}

),

clock as (

    -- Wall-clock time in the deployment's zone, shifted back by the deadline and one
    -- day: its date is the latest night whose deadline has passed.
    select
        cast(
            {{ dbt.dateadd(
                'minute',
                -(deadline_minutes + 24 * 60),
                '(' ~ dbt.current_timestamp() ~ " at time zone '" ~ timezone ~ "')"
            ) }}
            as date
        ) as expected_run_date

),

latest_dates as (

    -- aggregates without group by: always exactly one row, even with no runs
    select
        max(run_date) as latest_attempted_run_date,
        max(case when run_status = 'published' then run_date end) as latest_published_run_date

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
        clock.expected_run_date

    from latest_dates
    cross join clock
    left join runs as published_run
        on published_run.run_date = latest_dates.latest_published_run_date
    left join runs as attempted_run
        on attempted_run.run_date = latest_dates.latest_attempted_run_date

),

flagged as (

    select
        *,
        coalesce(latest_published_run_date < expected_run_date, true) as is_behind_clock,
        'latest run ' || cast(latest_attempted_run_date as {{ dbt.type_string() }})
            || ' is ' || latest_attempted_status
            || coalesce(': ' || latest_attempted_message, '') as attempted_text,
        'BI shows run '
            || coalesce(cast(latest_published_run_date as {{ dbt.type_string() }}), '(none)')
            as shown_text

    from joined

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
            when is_behind_clock then true
            when latest_attempted_status <> 'published' then true
            else false
        end as is_stale,

        case
            when latest_attempted_run_date is null
                then 'no forecast run has been recorded'
            when is_behind_clock
                then 'no run for ' || cast(expected_run_date as {{ dbt.type_string() }})
                    || ' was published by {{ deadline }}; ' || shown_text
                    || case
                        when latest_attempted_status <> 'published' then '; ' || attempted_text
                        else ''
                    end
            when latest_attempted_status <> 'published'
                then attempted_text || '; ' || shown_text
        end as stale_reason

    from flagged

)

select * from final
