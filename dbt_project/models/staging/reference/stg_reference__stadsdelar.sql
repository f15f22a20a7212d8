with

source as (

    select * from {{ source('reference', 'ref_stadsdelar') }}

),

renamed as (

    select
        stadsdel_name,
        stadsdelsomrade_code,
        sspf_omrade_code
    from source

)

select * from renamed
