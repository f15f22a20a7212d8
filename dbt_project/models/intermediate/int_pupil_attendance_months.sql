{#- Offered and absence minutes per linkable person and month, in one set-based pass over
    the attendance records: a lesson belongs to the local date of its start; only reported
    records count as offered time; lessons after R do not count. -#}

with

attendances as (

    select person_id, calendar_event_id, is_reported, valid_absence_minutes, invalid_absence_minutes
    from {{ ref('stg_ss12000__attendances') }}

),

lessons as (

    select calendar_event_id, lesson_date, lesson_minutes
    from {{ ref('stg_ss12000__calendar_events') }}
    where lesson_date <= {{ reference_date() }}
        and lesson_date >= {{ first_history_month() }}

),

people as (

    select person_id, person_pseudonym
    from {{ ref('int_ss12000__person_pseudonyms') }}
    where is_linkable

),

per_person_id as (

    select
        attendances.person_id,
        cast(date_trunc('month', lessons.lesson_date) as date) as month_start,
        sum(lessons.lesson_minutes) filter (where attendances.is_reported) as offered_minutes,
        sum(attendances.valid_absence_minutes) filter (where attendances.is_reported) as valid_absence_minutes,
        sum(attendances.invalid_absence_minutes) filter (where attendances.is_reported) as invalid_absence_minutes,
        count(*) as scheduled_lessons,
        count(*) filter (where attendances.is_reported) as reported_lessons
    from attendances
    inner join lessons
        on lessons.calendar_event_id = attendances.calendar_event_id
    group by 1, 2

),

final as (

    select
        people.person_pseudonym,
        per_person_id.month_start,
        cast(coalesce(sum(per_person_id.offered_minutes), 0) as double) as offered_minutes,
        cast(coalesce(sum(per_person_id.valid_absence_minutes), 0) as bigint) as valid_absence_minutes,
        cast(coalesce(sum(per_person_id.invalid_absence_minutes), 0) as bigint) as invalid_absence_minutes,
        cast(coalesce(sum(per_person_id.scheduled_lessons), 0) as bigint) as scheduled_lessons,
        cast(coalesce(sum(per_person_id.reported_lessons), 0) as bigint) as reported_lessons
    from per_person_id
    inner join people
        on people.person_id = per_person_id.person_id
    group by 1, 2

)

select * from final
