{#- What the municipality's reference files do not cover (load report): school units that
    SS 12000 serves but ref_skolenheter does not map to an SSPF area (their pupils count in the
    city and the school unit only), and district names (stadsdel) the case system or the police
    write that ref_stadsdelar does not know (their records count in the city only). A value
    that does not look like a name is not shown. Counts only. -#}

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

reports as (

    select 'case_system' as source_system, stadsdel
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

district_values as (

    select source_system, {{ district_key('stadsdel') }} as stadsdel from reports
    union all
    select source_system, {{ district_key('stadsdel') }} as stadsdel from police_events

),

unknown_districts as (

    select
        district_values.source_system,
        'stadsdel_not_in_reference' as kind,
        case
            when regexp_matches(district_values.stadsdel, '[0-9]{4}')
                or length(district_values.stadsdel) > 60 then '(oläsligt värde)'
            else district_values.stadsdel
        end as value,
        cast(null as varchar) as value_name,
        count(*) as records
    from district_values
    left join districts
        on {{ district_key('districts.stadsdel_name') }} = district_values.stadsdel
    where district_values.stadsdel is not null
        and districts.stadsdel_name is null
    group by all

),

final as (

    select * from unmapped_units
    union all
    select * from unknown_districts

)

select * from final
