{#- Attendance per linkable person and lesson day, in one set-based pass over the current
    attendance records: the one aggregation of the records, which every period and every
    window (weeks, months, terms, years, sst_effekt's before/after windows) sums up. A lesson
    belongs to the local (Europe/Stockholm) date of its start; lessons after R do not count;
    only reported records count as offered time; any school counts. -#}

with

attendances as (

    select person_id, calendar_event_id, is_reported, valid_absence_minutes, invalid_absence_minutes
    from {{ ref('stg_ss12000__attendances') }}

),

lessons as (

    select calendar_event_id, lesson_date, lesson_minutes
    from {{ ref('stg_ss12000__calendar_events') }}
    where lesson_date <= {{ reference_date() }}

),

people as (

    select person_id, person_pseudonym
    from {{ ref('int_ss12000__person_pseudonyms') }}
    where is_linkable

),

per_person_day as (

    select
        people.person_pseudonym,
        lessons.lesson_date,
        sum(lessons.lesson_minutes) filter (where attendances.is_reported) as offered_minutes,
        sum(attendances.valid_absence_minutes) filter (where attendances.is_reported) as valid_absence_minutes,
        sum(attendances.invalid_absence_minutes) filter (where attendances.is_reported) as invalid_absence_minutes,
        count(*) as scheduled_records,
        count(*) filter (where attendances.is_reported) as reported_records
    from attendances
    inner join lessons
        on lessons.calendar_event_id = attendances.calendar_event_id
    inner join people
        on people.person_id = attendances.person_id
    group by 1, 2

),

final as (

    select
        person_pseudonym,
        lesson_date,
        cast(coalesce(offered_minutes, 0) as double) as offered_minutes,
        cast(coalesce(valid_absence_minutes, 0) as bigint) as valid_absence_minutes,
        cast(coalesce(invalid_absence_minutes, 0) as bigint) as invalid_absence_minutes,
        cast(scheduled_records as bigint) as scheduled_records,
        cast(reported_records as bigint) as reported_records
    from per_person_day

)

select * from final
