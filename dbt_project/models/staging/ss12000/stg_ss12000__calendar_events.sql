{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_rebuilt_rows('calendar_event_id', pending_ss12000_ids('calendar_events')) }}",
) }}

{#- Incremental, as stg_ss12000__attendances: each night rebuilds only the events the pending
    batches changed (a new version or a deletion): the pre-hook deletes them, the newest live
    version of each is inserted again, in one transaction. A first or full build reads every
    event. A table, not a view: int_ss12000__attendance_days and this model's tests (and the
    relationships test of the attendance records) each recomputed the newest version of
    every event, every night. -#}

-- depends_on: {{ ref('stg_ss12000__batch_lesson_days') }}

with

newest as (

    {%- if is_incremental() %}
    {{ ss12000_live_rows('calendar_events', only_ids=pending_ss12000_ids('calendar_events')) }}
    {%- else %}
    {{ ss12000_live_rows('calendar_events') }}
    {%- endif %}

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
