with

source as (

    select * from {{ source('ss12000', 'attendances') }}

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

deleted as (

    select distinct id
    from {{ source('ss12000', 'deleted_entities') }}
    where {{ ss12000_entity_type('entity_type') }} = 'attendances'

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
        id as attendance_id,
        calendar_event_id,
        student_id as person_id,

        ---------- booleans
        coalesce(is_reported, false) as is_reported,

        ---------- numerics
        attendance_minutes,
        coalesce(valid_absence_minutes, 0) as valid_absence_minutes,
        coalesce(invalid_absence_minutes, 0) as invalid_absence_minutes,
        other_attendance_minutes,

        ---------- timestamps
        reported_timestamp,
        modified_at,
        batch_id

    from newest
    where not exists (select 1 from deleted where deleted.id = newest.id)

)

select * from renamed
