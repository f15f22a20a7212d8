{#- One row per pupil and month (pseudonymised): the month's enrolment (school unit,
    school year, Huvudman kind, area) and the offered and absence minutes of the reported
    lessons. Assessed = enrolled and offered >= min_offered_minutes; high absence =
    assessed and absence / offered >= high_absence_threshold. -#}

with

enrolment_months as (

    select * from {{ ref('int_pupil_enrolment_months') }}

),

attendance_months as (

    select * from {{ ref('int_pupil_attendance_months') }}

),

months as (

    select month_start, month_end from {{ ref('int_months') }}

),

joined as (

    select
        coalesce(enrolment_months.person_pseudonym, attendance_months.person_pseudonym) as person_pseudonym,
        coalesce(enrolment_months.month_start, attendance_months.month_start) as month_start,
        enrolment_months.person_pseudonym is not null as is_enrolled,
        enrolment_months.school_unit_code,
        enrolment_months.school_year,
        enrolment_months.huvudman_kind,
        enrolment_months.sspf_omrade_code,
        enrolment_months.stadsdelsomrade_code,
        coalesce(attendance_months.offered_minutes, 0) as offered_minutes,
        coalesce(attendance_months.valid_absence_minutes, 0) as valid_absence_minutes,
        coalesce(attendance_months.invalid_absence_minutes, 0) as invalid_absence_minutes,
        coalesce(attendance_months.scheduled_lessons, 0) as scheduled_lessons,
        coalesce(attendance_months.reported_lessons, 0) as reported_lessons
    from enrolment_months
    full outer join attendance_months
        on attendance_months.person_pseudonym = enrolment_months.person_pseudonym
        and attendance_months.month_start = enrolment_months.month_start

),

measured as (

    select
        joined.*,
        joined.valid_absence_minutes + joined.invalid_absence_minutes as absence_minutes,
        case
            when joined.offered_minutes > 0
                then cast(joined.valid_absence_minutes + joined.invalid_absence_minutes as double)
                    / joined.offered_minutes
        end as absence_share,
        joined.is_enrolled
            and joined.offered_minutes >= {{ var_number('min_offered_minutes') }} as is_assessed
    from joined

),

final as (

    select
        measured.person_pseudonym,
        measured.month_start,
        months.month_end,
        measured.is_enrolled,
        measured.school_unit_code,
        measured.school_year,
        measured.huvudman_kind,
        measured.sspf_omrade_code,
        measured.stadsdelsomrade_code,
        measured.offered_minutes,
        measured.valid_absence_minutes,
        measured.invalid_absence_minutes,
        measured.absence_minutes,
        measured.absence_share,
        measured.scheduled_lessons,
        measured.reported_lessons,
        measured.is_assessed,
        measured.is_assessed
            and measured.absence_share >= {{ var_number('high_absence_threshold') }} as is_high_absence,
        measured.is_assessed
            and measured.absence_share >= {{ var_number('very_high_absence_threshold') }} as is_very_high_absence
    from measured
    inner join months
        on months.month_start = measured.month_start

)

select * from final
