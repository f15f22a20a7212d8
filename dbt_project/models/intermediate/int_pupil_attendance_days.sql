{#- Attendance per linkable person and lesson day up to R: the per-person-id days of
    int_ss12000__attendance_days (incremental, independent of R and of identities) summed
    per pseudonym. The one aggregation of the records that every period and every window
    (weeks, months, terms, years, sst_effekt's before/after windows) sums up. A table
    rebuilt every night: a change of R, of a person's linkability, pseudonym or the key
    leaves nothing stale here. Its post-hook marks the pending SS 12000 batches built, in
    the transaction that commits this table: the days they touched are now in both (a build
    that fails before leaves them pending, and the next night rebuilds their days again). -#}

{{ config(
    post_hook="update {{ ref('stg_ss12000__batch_lesson_days') }} set is_built = true where not is_built",
) }}

-- depends_on: {{ ref('stg_ss12000__batch_lesson_days') }}

with

attendance_days as (

    select *
    from {{ ref('int_ss12000__attendance_days') }}
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
        attendance_days.lesson_date,
        sum(attendance_days.offered_minutes) as offered_minutes,
        sum(attendance_days.valid_absence_minutes) as valid_absence_minutes,
        sum(attendance_days.invalid_absence_minutes) as invalid_absence_minutes,
        sum(attendance_days.scheduled_records) as scheduled_records,
        sum(attendance_days.reported_records) as reported_records
    from attendance_days
    inner join people
        on people.person_id = attendance_days.person_id
    group by 1, 2

),

final as (

    select
        person_pseudonym,
        lesson_date,
        cast(offered_minutes as double) as offered_minutes,
        cast(valid_absence_minutes as bigint) as valid_absence_minutes,
        cast(invalid_absence_minutes as bigint) as invalid_absence_minutes,
        cast(scheduled_records as bigint) as scheduled_records,
        cast(reported_records as bigint) as reported_records
    from per_person_day

)

select * from final
