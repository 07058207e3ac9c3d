{#-
    Classifies every order line into the quantities the forecasts care about.

    demand   = open + shipped lines (what customers asked for on order_date)
    returned = returned lines, as a positive quantity; returns are NOT
               negative demand (they say nothing about what customers asked
               for that day), so they never reduce demand_quantity
    cancelled = cancelled lines, as a positive quantity; not demand
-#}

with

order_lines as (

    select * from {{ ref('stg_erp__order_lines') }}

),

classified as (

    select
        order_line_id,
        order_id,
        item_id,
        location_id,
        order_date,
        status,
        quantity,
        currency,

        status in ('open', 'shipped') as is_demand,

        case
            when status in ('open', 'shipped') then quantity
            else 0
        end as demand_quantity,

        case
            when status in ('open', 'shipped') then coalesce(amount, quantity * unit_price)
            else 0
        end as demand_revenue,

        case
            when status = 'returned' then abs(quantity)
            else 0
        end as returned_quantity,

        case
            when status = 'cancelled' then abs(quantity)
            else 0
        end as cancelled_quantity

    from order_lines

),

final as (

    select * from classified

)

select * from final
