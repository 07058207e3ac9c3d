with

locations as (

    select * from {{ ref('stg_erp__locations') }}

),

demand_lines as (

    select * from {{ ref('int_order_lines_demand') }}

),

sale_dates as (

    select
        location_id,
        min(order_date) as first_sale_date,
        max(order_date) as last_sale_date

    from demand_lines
    where is_demand
    group by location_id

),

joined as (

    select
        locations.location_id,
        locations.source_system,
        locations.location_name,
        locations.location_type,
        locations.country,
        locations.region,
        sale_dates.first_sale_date,
        sale_dates.last_sale_date,
        locations.updated_at,
        locations.loaded_run_date

    from locations
    left join sale_dates
        on sale_dates.location_id = locations.location_id

),

final as (

    select * from joined

)

select * from final
