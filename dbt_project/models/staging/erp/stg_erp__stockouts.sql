with

source as (

    select * from {{ source('erp', 'stockouts') }}

),

renamed as (

    select
        ---------- ids
        stockout_id,
        item_id,
        location_id,
        source as source_system,

        ---------- dates
        cast(stockout_date as date) as stockout_date,

        ---------- audit
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_run_date as date) as loaded_run_date

    from source

),

final as (

    select * from renamed

)

select * from final
