with

source as (

    select * from {{ source('erp', 'promotions') }}

),

renamed as (

    select
        ---------- ids
        promotion_id,
        item_id,
        -- null: the promotion applies at every location
        location_id,
        source as source_system,

        ---------- dates
        cast(start_date as date) as start_date,
        cast(end_date as date) as end_date,

        ---------- numerics
        cast(discount_pct as {{ dbt.type_float() }}) as discount_pct,

        ---------- audit
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_run_date as date) as loaded_run_date

    from source

),

final as (

    select * from renamed

)

select * from final
