with

source as (

    select * from {{ source('reference', 'ref_brottskoder') }}

),

renamed as (

    select
        brottskod,
        brottsbenamning,
        brottskategori
    from source

)

select * from renamed
