with

source as (

    select * from {{ source('ss12000', 'calendar_events') }}

),

batches as (

    select batch_id, loaded_at from {{ source('load_meta', 'batches') }}

),

deleted as (

    select distinct id
    from {{ source('ss12000', 'deleted_entities') }}
    where {{ ss12000_entity_type('entity_type') }} = 'calendarevents'

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
        id as calendar_event_id,
        activity_id,

        ---------- dates: a lesson belongs to the local (Europe/Stockholm) date of its start
        cast(timezone('Europe/Stockholm', start_time) as date) as lesson_date,

        ---------- numerics
        cast(epoch_ms(end_time) - epoch_ms(start_time) as double) / 60000 as lesson_minutes,

        ---------- timestamps
        start_time,
        end_time,
        modified_at,
        batch_id

    from newest
    where not exists (select 1 from deleted where deleted.id = newest.id)

)

select * from renamed
