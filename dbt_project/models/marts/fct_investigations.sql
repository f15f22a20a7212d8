{#- Investigations (utredning, newest version, not weeded) started up to R of linkable
    persons, pseudonymised, one row per investigation: start and closing date (a closing
    date after R has not happened yet: null), the age on the start date, and the areas of
    the handling district of the aktualisering that led to it (the newest, not weeded
    version, whatever its typ; none: city level only). -#}

with

investigations as (

    select * from {{ ref('stg_case_system__utredning') }}

),

matters as (

    select * from {{ ref('stg_case_system__aktualisering') }}

),

clients as (

    select * from {{ ref('int_case_system__klient_pseudonyms') }}

),

districts as (

    select * from {{ ref('stg_reference__stadsdelar') }}

),

final as (

    select
        investigations.utredning_id as investigation_key,
        clients.person_pseudonym,
        investigations.startdatum,
        case
            when investigations.avslutsdatum <= {{ reference_date() }} then investigations.avslutsdatum
        end as avslutsdatum,
        {{ age_on('clients.birth_date', 'investigations.startdatum') }} as age_at_start,
        {{ age_on('clients.birth_date', 'investigations.startdatum') }} between 0 and 17 as is_child,
        districts.stadsdelsomrade_code,
        nullif(trim(districts.sspf_omrade_code), '') as sspf_omrade_code
    from investigations
    inner join clients
        on clients.klient_id = investigations.klient_id
    left join matters
        on matters.aktualisering_id = investigations.aktualisering_id
    left join districts
        on {{ district_key('districts.stadsdel_name') }} = {{ district_key('matters.stadsdel') }}
    where clients.is_linkable
        and investigations.startdatum is not null
        and investigations.startdatum <= {{ reference_date() }}

)

select * from final
