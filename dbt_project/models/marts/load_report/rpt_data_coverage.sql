{#- Where each source's data starts and stops (INDICATOR_RULES.md, "Data coverage"): the
    first and last data date of SS 12000 (lesson dates of the attendance records), the case
    system (inkom_datum of the current aktualisering rows) and the police (Brottsdatum of the
    existing rows), every person, up to R. One row per source, null dates when a source has no
    data yet. Read by published_indicators' coverage marks, the manifest and the report. -#}

with

attendance_days as (

    select lesson_date as data_date
    from {{ ref('int_ss12000__attendance_days') }}
    where scheduled_records > 0

),

aktualisering as (

    select inkom_datum as data_date
    from {{ ref('stg_case_system__aktualisering') }}

),

police_events as (

    select brottsdatum as data_date
    from {{ ref('stg_police__events') }}

),

dated as (

    select 'ss12000' as source_system, data_date from attendance_days
    union all
    select 'case_system' as source_system, data_date from aktualisering
    union all
    select 'police' as source_system, data_date from police_events

),

sources as (

    select 'ss12000' as source_system
    union all
    select 'case_system'
    union all
    select 'police'

),

final as (

    select
        sources.source_system,
        min(dated.data_date) as first_data_date,
        max(dated.data_date) as last_data_date
    from sources
    left join dated
        on dated.source_system = sources.source_system
        and dated.data_date <= {{ reference_date() }}
    group by sources.source_system

)

select * from final
