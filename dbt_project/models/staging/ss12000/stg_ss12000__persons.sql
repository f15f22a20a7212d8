{{ config(materialized='table') }}

{#- A table, not a view: it calls the identity macros, which exist only on connections
    opened through samverkan.dbt_plugin. The raw civic number stops here; only the
    normalised 12-digit number (or the reason it is unusable) goes on. -#}

with

source as (

    select * from {{ source('ss12000', 'persons') }}

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

deleted as (

    select distinct id
    from {{ source('ss12000', 'deleted_entities') }}
    where {{ ss12000_entity_type('entity_type') }} = 'persons'

),

newest as (

    select
        source.*,
        batches.loaded_at
    from source
    left join batches using (batch_id)
    {{ keep_newest('source.id', 'source.modified_at') }}

),

renamed as (

    select
        ---------- ids
        id as person_id,
        {{ normalised_pnr('civic_no') }} as pnr12,

        ---------- text
        {{ pnr_problem('civic_no') }} as pnr_problem,
        sex,
        security_marking,

        ---------- booleans
        -- protected unless explicitly marked 'Ingen' (a missing marking is not trusted)
        coalesce(security_marking, '') <> 'Ingen' as is_protected,

        ---------- timestamps
        modified_at,
        batch_id

    from newest
    where not exists (select 1 from deleted where deleted.id = newest.id)

)

select * from renamed
