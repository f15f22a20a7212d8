{#- What the municipality's reference files do not cover (load report): school units that
    SS 12000 serves but ref_skolenheter does not map to an SSPF area (their pupils count in the
    city and the school unit only), handling districts the case system writes (aktualisering.
    stadsdel, a stadsdelsområde) that match no name or code of ref_stadsdelsomraden, or that
    are blank (their matters count in the city only), and offence districts (Stadsdel) the
    police write that ref_stadsdelar does not know (their records count in the city only). A
    value that does not look like a name is not shown. Counts only. -#}

with

organisations as (

    select * from {{ ref('stg_ss12000__organisations') }}

),

enrolments as (

    select * from {{ ref('int_ss12000__current_enrolments') }}

),

school_units as (

    select * from {{ ref('stg_reference__skolenheter') }}

),

districts as (

    select * from {{ ref('stg_reference__stadsdelar') }}

),

stadsdelsomraden as (

    select * from {{ ref('stg_reference__stadsdelsomraden') }}

),

matters as (

    select {{ district_key('stadsdel') }} as stadsdel
    from {{ ref('stg_case_system__aktualisering') }}

),

police_events as (

    select 'police' as source_system, stadsdel
    from {{ ref('stg_police__events') }}

),

unmapped_units as (

    select
        'ss12000' as source_system,
        'school_unit_not_in_reference' as kind,
        organisations.school_unit_code as value,
        min(organisations.organisation_name) as value_name,
        count(distinct enrolments.person_id) as records
    from organisations
    left join school_units
        on school_units.school_unit_code = organisations.school_unit_code
    left join enrolments
        on enrolments.school_unit_code = organisations.school_unit_code
    where organisations.school_unit_code is not null
        and school_units.school_unit_code is null
    group by organisations.school_unit_code

),

-- the case system's handling district: a stadsdelsområde's name or code (as
-- fct_reports_of_concern matches it); blank or unknown matters count in the city only
unknown_handling_districts as (

    select
        'case_system' as source_system,
        case
            when matters.stadsdel is null then 'handling_district_blank'
            else 'handling_district_not_in_reference'
        end as kind,
        case
            when matters.stadsdel is null then '(tom)'
            else {{ readable_district('matters.stadsdel') }}
        end as value,
        cast(null as varchar) as value_name,
        count(*) as records
    from matters
    left join stadsdelsomraden as by_name
        on {{ district_key('by_name.stadsdelsomrade_name') }} = matters.stadsdel
    left join stadsdelsomraden as by_code
        on {{ district_key('by_code.stadsdelsomrade_code') }} = matters.stadsdel
    where by_name.stadsdelsomrade_code is null
        and by_code.stadsdelsomrade_code is null
    group by all

),

-- the police file's offence district: a name of ref_stadsdelar
unknown_offence_districts as (

    select
        police_events.source_system,
        'stadsdel_not_in_reference' as kind,
        {{ readable_district('police_events.stadsdel') }} as value,
        cast(null as varchar) as value_name,
        count(*) as records
    from (
        select source_system, {{ district_key('stadsdel') }} as stadsdel from police_events
    ) as police_events
    left join districts
        on {{ district_key('districts.stadsdel_name') }} = police_events.stadsdel
    where police_events.stadsdel is not null
        and districts.stadsdel_name is null
    group by all

),

final as (

    select * from unmapped_units
    union all
    select * from unknown_handling_districts
    union all
    select * from unknown_offence_districts

)

select * from final
