with

source as (

    select * from {{ source('erp', 'order_lines') }}

),

renamed as (

    select
        ---------- ids
        order_line_id,
        order_id,
        item_id,
        location_id,
        source as source_system,

        ---------- dates
        cast(order_date as date) as order_date,

        ---------- numerics
        cast(quantity as {{ dbt.type_float() }}) as quantity,
        cast(unit_price as {{ dbt.type_float() }}) as unit_price,
        cast(amount as {{ dbt.type_float() }}) as amount,

        ---------- text
        currency,
        lower(status) as status,

        ---------- audit
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_run_date as date) as loaded_run_date

    from source

),

final as (

    select * from renamed

)

select * from final
