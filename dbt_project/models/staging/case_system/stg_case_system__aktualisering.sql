with

newest as (

    {{ case_system_live_rows('aktualisering') }}

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

)

select * from renamed
