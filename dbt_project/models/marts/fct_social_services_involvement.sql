{#- Social services' involvement with linkable persons, pseudonymised: reports of concern
    (a one-day involvement on inkom_datum, any age), investigations and interventions, each
    with its start and end date (end null while open; an end after R has not happened yet).
    Only involvement that started by R. -#}

with

reports as (

    select
        person_pseudonym,
        'anmalan' as involvement_type,
        report_key as involvement_id,
        cast(null as varchar) as insatstyp,
        inkom_datum as start_date,
        inkom_datum as end_date
    from {{ ref('fct_reports_of_concern') }}

),

investigations as (

    select
        person_pseudonym,
        'utredning' as involvement_type,
        investigation_key as involvement_id,
        cast(null as varchar) as insatstyp,
        startdatum as start_date,
        avslutsdatum as end_date
    from {{ ref('fct_investigations') }}

),

interventions as (

    select
        person_pseudonym,
        'insats' as involvement_type,
        intervention_key as involvement_id,
        insatstyp,
        startdatum as start_date,
        slutdatum as end_date
    from {{ ref('fct_interventions') }}

),

final as (

    select * from reports
    union all
    select * from investigations
    union all
    select * from interventions

)

select * from final
