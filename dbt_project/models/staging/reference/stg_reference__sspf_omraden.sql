with

source as (

    select * from {{ source('reference', 'ref_sspf_omraden') }}

),

renamed as (

    select
        sspf_omrade_code,
        sspf_omrade_name,
        stadsdelsomrade_code
    from source

)

select * from renamed
