{#- Every area an indicator cell can belong to (INDICATOR_RULES.md, "Areas"): the city,
    the stadsdelsområden and SSPF areas of the reference seeds, and the school units of
    SS 12000 /organisations (skolenhetskod and displayName). -#}

with

districts as (

    select * from {{ ref('stg_reference__stadsdelsomraden') }}

),

sspf_areas as (

    select * from {{ ref('stg_reference__sspf_omraden') }}

),

organisations as (

    select * from {{ ref('stg_ss12000__organisations') }}

),

city as (

    select
        'stad' as area_level,
        {{ required_var_string('municipality_code') }} as area_code,
        {{ required_var_string('municipality_name') }} as area_name

),

school_units as (

    select
        'skolenhet' as area_level,
        school_unit_code as area_code,
        -- one name per code (several organisation ids could carry the same code)
        min(organisation_name) as area_name
    from organisations
    where school_unit_code is not null
    group by school_unit_code

),

final as (

    select * from city
    union all
    select 'stadsdelsomrade' as area_level, stadsdelsomrade_code as area_code, stadsdelsomrade_name as area_name
    from districts
    union all
    select 'sspf_omrade' as area_level, sspf_omrade_code as area_code, sspf_omrade_name as area_name
    from sspf_areas
    union all
    select * from school_units

)

select * from final
