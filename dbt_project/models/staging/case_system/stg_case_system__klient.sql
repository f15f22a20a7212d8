{{ config(materialized='table') }}

{#- A table, not a view: it calls the identity macros, which exist only on connections
    opened through samverkan.dbt_plugin. The raw personnummer stops here. -#}

with

newest as (

    {{ case_system_live_rows('klient') }}

),

candidates as (

    select
        newest.*,
        {{ pnr_candidate('personnummer') }} as pnr_candidate
    from newest

),

renamed as (

    select
        ---------- ids
        klient_id,
        {{ normalised_pnr('personnummer', 'pnr_candidate') }} as pnr12,

        ---------- text
        {{ pnr_problem('personnummer', 'pnr_candidate') }} as pnr_problem,

        ---------- booleans
        coalesce(skyddad_identitet, false) as is_protected,

        ---------- timestamps
        andrad_tid,
        batch_id

    from candidates

)

select * from renamed
