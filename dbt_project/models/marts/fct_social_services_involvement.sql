{#- Social services' involvement with linkable persons, pseudonymised: reports of concern
    (a one-day involvement on inkom_datum), investigations and interventions, each with
    its start and end date (end null while open). Only involvement that started by R. -#}

with

reports as (

    select
        person_pseudonym,
        'anmalan' as involvement_type,
        aktualisering_id as involvement_id,
        cast(null as varchar) as insatstyp,
        inkom_datum as start_date,
        inkom_datum as end_date
    from {{ ref('fct_reports_of_concern') }}

),

clients as (

    select * from {{ ref('int_case_system__klient_pseudonyms') }}
    where is_linkable

),

investigations as (

    select
        clients.person_pseudonym,
        'utredning' as involvement_type,
        utredning.utredning_id as involvement_id,
        cast(null as varchar) as insatstyp,
        utredning.startdatum as start_date,
        utredning.avslutsdatum as end_date
    from {{ ref('stg_case_system__utredning') }} as utredning
    inner join clients
        on clients.klient_id = utredning.klient_id
    where utredning.startdatum <= {{ reference_date() }}

),

interventions as (

    select
        clients.person_pseudonym,
        'insats' as involvement_type,
        insats.insats_id as involvement_id,
        insats.insatstyp,
        insats.startdatum as start_date,
        insats.slutdatum as end_date
    from {{ ref('stg_case_system__insats') }} as insats
    inner join clients
        on clients.klient_id = insats.klient_id
    where insats.startdatum <= {{ reference_date() }}

),

final as (

    select * from reports
    union all
    select * from investigations
    union all
    select * from interventions

)

select * from final
