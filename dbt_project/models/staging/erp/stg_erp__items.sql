with

source as (

    select * from {{ source('erp', 'items') }}

),

renamed as (

    select
        ---------- ids
        item_id,
        sku,
        source as source_system,

        ---------- text
        name as item_name,
        department,
        category,
        subcategory,

        ---------- numerics
        cast(list_price as {{ dbt.type_float() }}) as list_price,

        ---------- dates
        cast(launch_date as date) as launch_date,
        cast(discontinue_date as date) as discontinue_date,

        ---------- audit
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_run_date as date) as loaded_run_date

    from source

),

final as (

    select * from renamed

)

select * from final
