with

source as (

    select * from {{ source('reference', 'ref_stadsdelsomraden') }}

),

renamed as (

    select
        stadsdelsomrade_code,
        stadsdelsomrade_name
    from source

)

select * from renamed
