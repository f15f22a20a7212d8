{{ config(materialized='table') }}

{#- A table, not a view: it calls the identity macros, which exist only on connections
    opened through samverkan.dbt_plugin. The raw civic number stops here; only the
    normalised 12-digit number (or the reason it is unusable) goes on. -#}

with

newest as (

    {{ ss12000_live_rows('persons') }}

),

candidates as (

    select
        newest.*,
        {{ pnr_candidate('civic_no') }} as pnr_candidate
    from newest

),

renamed as (

    select
        ---------- ids
        id as person_id,
        {{ normalised_pnr('civic_no', 'pnr_candidate') }} as pnr12,

        ---------- text
        {{ pnr_problem('civic_no', 'pnr_candidate') }} as pnr_problem,
        sex,
        security_marking,

        ---------- booleans
        -- protected unless explicitly marked 'Ingen' (a missing marking is not trusted)
        coalesce(security_marking, '') <> 'Ingen' as is_protected,

        ---------- timestamps
        modified_at,
        batch_id

    from candidates

)

select * from renamed
