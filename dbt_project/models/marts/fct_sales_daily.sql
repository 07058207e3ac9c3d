{#-
    Daily sales per item and location. Sparse: a row exists only for days with
    order-line activity (any status) or a stockout; the forecasting engine fills
    the missing days with zero demand.
-#}

with

activity as (

    select * from {{ ref('int_sales_daily_activity') }}

),

stockouts as (

    select * from {{ ref('stg_erp__stockouts') }}

),

promotions as (

    select * from {{ ref('stg_erp__promotions') }}

),

stockout_days as (

    select distinct
        item_id,
        location_id,
        stockout_date as sales_date

    from stockouts

),

series_days as (

    select item_id, location_id, sales_date from activity
    union
    select item_id, location_id, sales_date from stockout_days

),

promo_days as (

    -- a promotion with a null location applies at every location
    select distinct
        series_days.item_id,
        series_days.location_id,
        series_days.sales_date

    from series_days
    inner join promotions
        on promotions.item_id = series_days.item_id
        and (
            promotions.location_id = series_days.location_id
            or promotions.location_id is null
        )
        and series_days.sales_date >= promotions.start_date
        and series_days.sales_date <= promotions.end_date

),

joined as (

    select
        series_days.item_id,
        series_days.location_id,
        series_days.sales_date,

        coalesce(activity.quantity, 0) as quantity,
        coalesce(activity.revenue, 0) as revenue,
        coalesce(activity.order_line_count, 0) as order_line_count,
        coalesce(activity.demand_line_count, 0) as demand_line_count,
        coalesce(activity.returned_quantity, 0) as returned_quantity,
        coalesce(activity.cancelled_quantity, 0) as cancelled_quantity,

        promo_days.item_id is not null as on_promo,
        stockout_days.item_id is not null as is_stockout

    from series_days
    left join activity
        on activity.item_id = series_days.item_id
        and activity.location_id = series_days.location_id
        and activity.sales_date = series_days.sales_date
    left join promo_days
        on promo_days.item_id = series_days.item_id
        and promo_days.location_id = series_days.location_id
        and promo_days.sales_date = series_days.sales_date
    left join stockout_days
        on stockout_days.item_id = series_days.item_id
        and stockout_days.location_id = series_days.location_id
        and stockout_days.sales_date = series_days.sales_date

),

final as (

    select * from joined

)

select * from final
