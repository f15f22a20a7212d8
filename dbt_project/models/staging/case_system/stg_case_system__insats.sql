with

newest as (

    {{ case_system_live_rows('insats') }}

),

renamed as (

    select
        ---------- ids
        insats_id,
        klient_id,

        ---------- text
        insatstyp,
        avslutsorsak,

        ---------- dates
        startdatum,
        slutdatum,
        planerat_slutdatum,

        ---------- timestamps
        andrad_tid,
        batch_id

    from newest

)

select * from renamed
