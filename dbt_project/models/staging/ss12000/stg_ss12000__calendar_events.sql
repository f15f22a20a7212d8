with

newest as (

    {{ ss12000_live_rows('calendar_events') }}

),

renamed as (

    select
        ---------- ids
        id as calendar_event_id,
        activity_id,

        ---------- dates: a lesson belongs to the local (Europe/Stockholm) date of its start
        {{ local_lesson_date('start_time') }} as lesson_date,

        ---------- numerics
        cast(epoch_ms(end_time) - epoch_ms(start_time) as double) / 60000 as lesson_minutes,

        ---------- timestamps
        start_time,
        end_time,
        modified_at,
        batch_id

    from newest

)

select * from renamed
