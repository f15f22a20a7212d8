{#- The enrolments of each person's newest version (an enrolment list is replaced as a
    whole when the person changes), with the school unit's code, Huvudman kind and area. -#}

with

persons as (

    select person_id, batch_id, modified_at from {{ ref('stg_ss12000__persons') }}

),

enrolments as (

    select * from {{ ref('stg_ss12000__enrolments') }}

),

organisations as (

    select * from {{ ref('stg_ss12000__organisations') }}

),

school_units as (

    select * from {{ ref('stg_reference__skolenheter') }}

),

sspf_areas as (

    select * from {{ ref('stg_reference__sspf_omraden') }}

),

current_version as (

    select enrolments.*
    from enrolments
    inner join persons
        on persons.person_id = enrolments.person_id
        and persons.batch_id = enrolments.batch_id
    qualify enrolments.person_modified_at is not distinct from
        max(enrolments.person_modified_at) over (partition by enrolments.person_id)

),

distinct_enrolments as (

    select distinct
        person_id,
        school_unit_id,
        school_type,
        school_year,
        start_date,
        end_date
    from current_version

),

final as (

    select
        row_number() over (
            order by
                distinct_enrolments.person_id,
                distinct_enrolments.school_unit_id,
                distinct_enrolments.school_type,
                distinct_enrolments.school_year,
                distinct_enrolments.start_date,
                distinct_enrolments.end_date
        ) as enrolment_key,
        distinct_enrolments.person_id,
        distinct_enrolments.school_unit_id,
        units.school_unit_code,
        distinct_enrolments.school_type,
        distinct_enrolments.school_year,
        distinct_enrolments.start_date,
        distinct_enrolments.end_date,
        case
            when units.organisation_id is null then null
            when {{ is_municipality_organisation_number('huvudman.organisation_number') }}
                then 'kommunal'
            else 'fristående'
        end as huvudman_kind,
        school_units.sspf_omrade_code,
        sspf_areas.stadsdelsomrade_code
    from distinct_enrolments
    left join organisations as units
        on units.organisation_id = distinct_enrolments.school_unit_id
    left join organisations as huvudman
        on huvudman.organisation_id = units.parent_organisation_id
    left join school_units
        on school_units.school_unit_code = units.school_unit_code
    left join sspf_areas
        on sspf_areas.sspf_omrade_code = school_units.sspf_omrade_code

)

select * from final
