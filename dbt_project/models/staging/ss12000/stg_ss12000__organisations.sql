with

source as (

    select * from {{ source('ss12000', 'organisations') }}

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

deleted as (

    select distinct id
    from {{ source('ss12000', 'deleted_entities') }}
    where {{ ss12000_entity_type('entity_type') }} = 'organisations'

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
        id as organisation_id,
        parent_organisation_id,

        ---------- text
        organisation_type,
        display_name as organisation_name,
        organisation_number,
        school_unit_code,
        municipality_code,
        school_types,

        ---------- timestamps
        modified_at,
        batch_id

    from newest
    where not exists (select 1 from deleted where deleted.id = newest.id)

)

select * from renamed
