with

items as (

    select * from {{ ref('stg_erp__items') }}

),

demand_lines as (

    select * from {{ ref('int_order_lines_demand') }}

),

sale_dates as (

    select
        item_id,
        min(order_date) as first_sale_date,
        max(order_date) as last_sale_date

    from demand_lines
    where is_demand
    group by item_id

),

joined as (

    select
        items.item_id,
        items.sku,
        items.source_system,
        items.item_name,
        items.department,
        items.category,
        items.subcategory,
        items.list_price,
        items.launch_date,
        items.discontinue_date,
        sale_dates.first_sale_date,
        sale_dates.last_sale_date,
        items.updated_at,
        items.loaded_run_date

    from items
    left join sale_dates
        on sale_dates.item_id = items.item_id

),

final as (

    select * from joined

)

select * from final
