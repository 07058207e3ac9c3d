-- Order-line activity aggregated to one row per item, location and order date.

with

demand_lines as (

    select * from {{ ref('int_order_lines_demand') }}

),

aggregated as (

    select
        item_id,
        location_id,
        order_date as sales_date,
        sum(demand_quantity) as quantity,
        coalesce(sum(demand_revenue), 0) as revenue,
        count(*) as order_line_count,
        sum(case when is_demand then 1 else 0 end) as demand_line_count,
        sum(returned_quantity) as returned_quantity,
        sum(cancelled_quantity) as cancelled_quantity

    from demand_lines
    group by
        item_id,
        location_id,
        order_date

),

final as (

    select * from aggregated

)

select * from final
