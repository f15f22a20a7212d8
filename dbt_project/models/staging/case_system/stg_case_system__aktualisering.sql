with

source as (

    select * from {{ source('case_system', 'aktualisering') }}

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

weeded as (

    select distinct rad_id
    from {{ source('case_system', 'gallring') }}
    where lower(trim(tabell)) = 'aktualisering'

),

newest as (

    select
        source.*,
        batches.loaded_at
    from source
    left join batches using (batch_id)
    {{ keep_newest('source.aktualisering_id', 'source.andrad_tid') }}

),

renamed as (

    select
        ---------- ids
        aktualisering_id,
        klient_id,

        ---------- text
        trim(typ) as typ,
        anmalare_kategori,
        beslut,
        stadsdel,

        ---------- dates
        inkom_datum,
        skyddsbedomning_datum,
        forhandsbedomning_datum,

        ---------- timestamps
        andrad_tid,
        batch_id

    from newest
    where not exists (select 1 from weeded where weeded.rad_id = newest.aktualisering_id)

)

select * from renamed
