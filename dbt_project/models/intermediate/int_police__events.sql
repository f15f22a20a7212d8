{#- Police rows (newest version, not cancelled) linked to pseudonyms; the personnummer and
    the diarienummer are replaced by keyed pseudonyms here, before anything reaches the
    analytics warehouse. Rows of unusable identifiers and protected persons stay out. -#}

with

events as (

    select * from {{ ref('stg_police__events') }}

),

identities as (

    select * from {{ ref('int_identities') }}

),

final as (

    select
        {{ keyed_reference('police-diarienummer', 'events.diarienummer') }} as incident_key,
        identities.person_pseudonym,
        events.roll,
        events.brottsdatum,
        events.anmalningsdatum,
        events.brottskod,
        events.stadsdel,
        {{ age_on('identities.birth_date', 'events.brottsdatum') }} as age_at_offence
    from events
    inner join identities
        on identities.pnr12 = events.pnr12
    where not identities.is_protected

)

select * from final
