{{ config(materialized='table') }}

{#- A table, not a view: the attendance records are the largest input, read by
    int_pupil_attendance_days and by this model's own tests; as a view each of them would
    choose the newest versions again. -#}

with

newest as (

    {{ ss12000_live_rows('attendances') }}

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

)

select * from renamed
