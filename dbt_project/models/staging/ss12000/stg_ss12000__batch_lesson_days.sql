{{ config(materialized='incremental', incremental_strategy='append') }}

{#- Load bookkeeping of the incremental attendance chain: one row per SS 12000 extract batch
    and lesson day it touched (a batch that touched none has one row with lesson_date null).
    A batch touches the days of every version of
      - each attendance record it delivers or deletes: the days of the lessons of all
        versions of that record (a correction can move a record to another lesson), and
      - each calendar event it delivers or deletes, and each lesson of those records: the
        days of all versions of the event (a moved lesson touches its old and its new day).
    Each night adds the batches loaded since (append); is_built turns true when
    int_ss12000__attendance_days has rebuilt the days (its post-hook). A first or full
    build records the batches without their days (rebuilds_all_days: every day is rebuilt). -#}

with

new_batches as (

    select batch_id, loaded_at
    from {{ source('load_meta', 'batches') }}
    where source = 'ss12000'
    {%- if is_incremental() %}
        and batch_id not in (select batch_id from {{ this }})
    {%- endif %}

),

{% if is_incremental() %}

changed_attendances as (

    select batch_id, id
    from {{ source('ss12000', 'attendances') }}
    where batch_id in (select batch_id from new_batches)
    union
    select batch_id, id
    from {{ source('ss12000', 'deleted_entities') }}
    where {{ ss12000_deleted_type_is('attendances') }}
        and batch_id in (select batch_id from new_batches)

),

changed_events as (

    select batch_id, id as calendar_event_id
    from {{ source('ss12000', 'calendar_events') }}
    where batch_id in (select batch_id from new_batches)
    union
    select batch_id, id as calendar_event_id
    from {{ source('ss12000', 'deleted_entities') }}
    where {{ ss12000_deleted_type_is('calendar_events') }}
        and batch_id in (select batch_id from new_batches)
    union
    select changed_attendances.batch_id, record_versions.calendar_event_id
    from changed_attendances
    inner join {{ source('ss12000', 'attendances') }} as record_versions
        on record_versions.id = changed_attendances.id

),

touched_days as (

    select distinct
        changed_events.batch_id,
        {{ local_lesson_date('event_versions.start_time') }} as lesson_date
    from changed_events
    inner join {{ source('ss12000', 'calendar_events') }} as event_versions
        on event_versions.id = changed_events.calendar_event_id

),

{% else %}

touched_days as (

    select cast(null as varchar) as batch_id, cast(null as date) as lesson_date
    where false

),

{% endif %}

final as (

    select
        new_batches.batch_id,
        new_batches.loaded_at,
        touched_days.lesson_date,
        {{ 'false' if is_incremental() else 'true' }} as rebuilds_all_days,
        false as is_built,
        {{ attendance_logic_fingerprint() }} as logic_fingerprint
    from new_batches
    left join touched_days
        on touched_days.batch_id = new_batches.batch_id

)

select * from final
