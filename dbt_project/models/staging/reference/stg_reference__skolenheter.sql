with

source as (

    select * from {{ source('reference', 'ref_skolenheter') }}

),

renamed as (

    select
        school_unit_code,
        school_unit_name,
        huvudman,
        sspf_omrade_code
    from source

)

select * from renamed
