with

source as (

    select * from {{ source('case_system', 'insats') }}

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

weeded as (

    select distinct rad_id
    from {{ source('case_system', 'gallring') }}
    where lower(trim(tabell)) = 'insats'

),

newest as (

    select
        source.*,
        batches.loaded_at
    from source
    left join batches using (batch_id)
    {{ keep_newest('source.insats_id', 'source.andrad_tid') }}

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
    where not exists (select 1 from weeded where weeded.rad_id = newest.insats_id)

)

select * from renamed
