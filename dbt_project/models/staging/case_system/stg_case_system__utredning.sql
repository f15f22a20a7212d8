with

newest as (

    {{ case_system_live_rows('utredning') }}

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

)

select * from renamed
