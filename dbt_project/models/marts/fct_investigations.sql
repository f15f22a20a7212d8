{#- Investigations (utredning, newest version, not weeded) started up to R of linkable
    persons, pseudonymised, one row per investigation: start and closing date (a closing
    date after R has not happened yet: null), the age on the start date, and the
    stadsdelsområde that handles the aktualisering that led to it (the newest, not weeded
    version, whatever its typ; its stadsdel matched as in fct_reports_of_concern: a name in
    ref_stadsdelsomraden, else a code; none: city level only). No SSPF area: the case system
    cannot place a matter there. -#}

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

stadsdelsomraden as (

    select * from {{ ref('stg_reference__stadsdelsomraden') }}

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
        coalesce(by_name.stadsdelsomrade_code, by_code.stadsdelsomrade_code) as stadsdelsomrade_code
    from investigations
    inner join clients
        on clients.klient_id = investigations.klient_id
    left join matters
        on matters.aktualisering_id = investigations.aktualisering_id
    left join stadsdelsomraden as by_name
        on {{ district_key('by_name.stadsdelsomrade_name') }} = {{ district_key('matters.stadsdel') }}
    left join stadsdelsomraden as by_code
        on {{ district_key('by_code.stadsdelsomrade_code') }} = {{ district_key('matters.stadsdel') }}
    where clients.is_linkable
        and investigations.startdatum is not null
        and investigations.startdatum <= {{ reference_date() }}

)

select * from final
