{{ config(materialized='table') }}

{#- A table, not a view: it calls the identity macros, which exist only on connections
    opened through samverkan.dbt_plugin. The raw personnummer stops here. -#}

with

newest as (

    {{ case_system_live_rows('klient') }}

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

)

select * from renamed
