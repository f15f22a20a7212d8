{{ config(materialized='table') }}

{#- A table, not a view: it calls the identity macros, which exist only on connections
    opened through samverkan.dbt_plugin. The raw personnummer stops here. -#}

with

source as (

    select * from {{ source('case_system', 'klient') }}

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

weeded as (

    select distinct rad_id
    from {{ source('case_system', 'gallring') }}
    where lower(trim(tabell)) = 'klient'

),

newest as (

    select
        source.*,
        batches.loaded_at
    from source
    left join batches using (batch_id)
    {{ keep_newest('source.klient_id', 'source.andrad_tid') }}

),

renamed as (

    select
        ---------- ids
        klient_id,
        {{ normalised_pnr('personnummer') }} as pnr12,

        ---------- text
        {{ pnr_problem('personnummer') }} as pnr_problem,

        ---------- booleans
        coalesce(skyddad_identitet, false) as is_protected,

        ---------- timestamps
        andrad_tid,
        batch_id

    from newest
    where not exists (select 1 from weeded where weeded.rad_id = newest.klient_id)

)

select * from renamed
