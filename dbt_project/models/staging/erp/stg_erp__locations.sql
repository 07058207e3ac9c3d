with

source as (

    select * from {{ source('erp', 'locations') }}

),

renamed as (

    select
        ---------- ids
        location_id,
        source as source_system,

        ---------- text
        name as location_name,
        location_type,
        country,
        region,

        ---------- audit
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_run_date as date) as loaded_run_date

    from source

),

final as (

    select * from renamed

)

select * from final
