{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_rebuilt_rows('attendance_id', pending_ss12000_ids('attendances')) }}",
) }}

{#- Incremental: each night rebuilds only the records the pending batches changed (a new
    version or a deletion): the pre-hook deletes them, the newest live version of each is
    inserted again, in one transaction. A first or full build reads every record. A table,
    not a view: the attendance records are the largest input, read by
    int_ss12000__attendance_days and by this model's own tests. -#}

-- depends_on: {{ ref('stg_ss12000__batch_lesson_days') }}

with

newest as (

    {%- if is_incremental() %}
    {{ ss12000_live_rows('attendances', only_ids=pending_ss12000_ids('attendances')) }}
    {%- else %}
    {{ ss12000_live_rows('attendances') }}
    {%- endif %}

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
