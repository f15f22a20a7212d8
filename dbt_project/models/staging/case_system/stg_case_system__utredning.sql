with

source as (

    select * from {{ source('case_system', 'utredning') }}

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

weeded as (

    select distinct rad_id
    from {{ source('case_system', 'gallring') }}
    where lower(trim(tabell)) = 'utredning'

),

newest as (

    select
        source.*,
        batches.loaded_at
    from source
    left join batches using (batch_id)
    {{ keep_newest('source.utredning_id', 'source.andrad_tid') }}

),

renamed as (

    select
        ---------- ids
        utredning_id,
        klient_id,
        aktualisering_id,

        ---------- text
        resultat,

        ---------- dates
        startdatum,
        avslutsdatum,

        ---------- timestamps
        andrad_tid,
        batch_id

    from newest
    where not exists (select 1 from weeded where weeded.rad_id = newest.utredning_id)

)

select * from renamed
