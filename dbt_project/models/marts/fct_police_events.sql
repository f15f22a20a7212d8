{#- Police rows (suspects and victims) with offence date up to R, one row per incident,
    person and role, pseudonymised: incident_key is a keyed pseudonym of the diarienummer.
    Offence category from ref_brottskoder by the trimmed Brottskod (unmapped: 'okänd').
    Areas from the offence's Stadsdel, trimmed and matched exactly to ref_stadsdelar
    (blank or unknown: none, city level only). -#}

with

events as (

    select * from {{ ref('int_police__events') }}

),

offence_codes as (

    select * from {{ ref('stg_reference__brottskoder') }}

),

districts as (

    select * from {{ ref('stg_reference__stadsdelar') }}

),

final as (

    select
        events.incident_key,
        events.person_pseudonym,
        events.roll,
        events.brottsdatum,
        events.anmalningsdatum,
        events.brottskod,
        coalesce(offence_codes.brottskategori, 'okänd') as brottskategori,
        nullif(trim(districts.sspf_omrade_code), '') as sspf_omrade_code,
        districts.stadsdelsomrade_code,
        events.age_at_offence,
        events.age_at_offence < 18 as is_minor
    from events
    left join offence_codes
        on offence_codes.brottskod = trim(events.brottskod)
    left join districts
        on {{ district_key('districts.stadsdel_name') }} = {{ district_key('events.stadsdel') }}
    where events.brottsdatum is not null
        and events.brottsdatum <= {{ reference_date() }}

)

select * from final
