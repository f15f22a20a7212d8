{{ config(materialized='table') }}

{#- A table, not a view: it calls the identity macros, which exist only on connections
    opened through samverkan.dbt_plugin. One row per (diarienummer, person, roll): the
    newest version by Senast ändrad wins, where the person is the normalised personnummer
    (the raw text when it is invalid). Rows whose newest version is 'Makulerad' do not
    exist. The raw personnummer stops here. -#}

with

source as (

    select * from {{ source('police', 'events') }}

),

candidates as (

    select
        source.*,
        {{ pnr_candidate('source.personnummer') }} as pnr_candidate
    from source

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

identified as (

    select
        candidates.* exclude (pnr_candidate),
        batches.loaded_at,
        {{ normalised_pnr('candidates.personnummer', 'candidates.pnr_candidate') }} as pnr12,
        {{ pnr_problem('candidates.personnummer', 'candidates.pnr_candidate') }} as pnr_problem
    from candidates
    left join batches using (batch_id)

),

newest as (

    select *
    from identified
    {{ keep_newest(
        "diarienummer, coalesce(pnr12, coalesce(personnummer, '')), roll",
        'senast_andrad',
        'file_name desc, line_number desc'
    ) }}

),

renamed as (

    select
        ---------- ids
        diarienummer,
        pnr12,

        ---------- text
        pnr_problem,
        trim(roll) as roll,
        trim(status) as status,
        brottskod,
        brottsbenamning,
        kommun,
        stadsdel,

        ---------- numerics
        alder as delivered_age,

        ---------- dates
        brottsdatum,
        anmalningsdatum,

        ---------- timestamps
        senast_andrad,
        batch_id,
        file_name,
        line_number

    from newest
    where coalesce(trim(status), '') <> 'Makulerad'

)

select * from renamed
