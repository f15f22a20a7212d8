with

source as (

    select * from {{ source('reference', 'ref_indicator_targets') }}

),

renamed as (

    select
        indicator_id,
        area_level,
        area_code,
        target,
        direction,
        tolerance
    from source

)

select * from renamed
