with

newest as (

    {{ ss12000_live_rows('organisations') }}

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

)

select * from renamed
