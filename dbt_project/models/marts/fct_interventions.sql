{#- Interventions (insats, newest version, not weeded) started up to R of linkable persons,
    pseudonymised, one row per intervention. An end date after R has not happened yet: the
    intervention is ongoing (slutdatum and avslutsorsak null). The planned end date is kept
    as recorded (it lies in the future by nature). -#}

with

interventions as (

    select * from {{ ref('stg_case_system__insats') }}

),

clients as (

    select * from {{ ref('int_case_system__klient_pseudonyms') }}

),

final as (

    select
        interventions.insats_id as intervention_key,
        clients.person_pseudonym,
        trim(interventions.insatstyp) as insatstyp,
        interventions.startdatum,
        case
            when interventions.slutdatum <= {{ reference_date() }} then interventions.slutdatum
        end as slutdatum,
        interventions.planerat_slutdatum,
        case
            when interventions.slutdatum <= {{ reference_date() }} then interventions.avslutsorsak
        end as avslutsorsak
    from interventions
    inner join clients
        on clients.klient_id = interventions.klient_id
    where clients.is_linkable
        and interventions.startdatum is not null
        and interventions.startdatum <= {{ reference_date() }}

)

select * from final
