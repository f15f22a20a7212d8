{%- set window_days = 7 * var_int('sst_window_weeks', 1) -%}

with

interventions as (

    select * from {{ ref('fct_interventions') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}
    where is_enrolled

),

-- ended SST interventions (an end after R has not happened) with their windows: before =
-- [start - weeks, start - 1], after = [end + 1, F] with F = end + weeks
sst_windows as (

    select
        intervention_key,
        person_pseudonym,
        cast(startdatum - {{ window_days }} as date) as before_start,
        cast(startdatum - 1 as date) as before_end,
        cast(slutdatum + 1 as date) as after_start,
        cast(slutdatum + {{ window_days }} as date) as follow_up_end
    from interventions
    where insatstyp = 'SST'
        and slutdatum is not null
        and slutdatum + {{ window_days }} <= {{ reference_date() }}

),

-- attendance per pseudonym and day up to R of the persons with a window (linkable person ids
-- of SS 12000 only: the days of int_ss12000__attendance_days summed per pseudonym)
people as (

    select person_id, person_pseudonym
    from {{ ref('int_ss12000__person_pseudonyms') }}
    where is_linkable
        and person_pseudonym in (select person_pseudonym from sst_windows)

),

attendance_days as (

    select
        people.person_pseudonym,
        attendance_days.lesson_date,
        sum(attendance_days.offered_minutes) as offered_minutes,
        sum(attendance_days.valid_absence_minutes) as valid_absence_minutes,
        sum(attendance_days.invalid_absence_minutes) as invalid_absence_minutes
    from {{ ref('int_ss12000__attendance_days') }} as attendance_days
    inner join people
        on people.person_id = attendance_days.person_id
    where attendance_days.lesson_date <= {{ reference_date() }}
    group by 1, 2

),

window_attendance as (

    select
        sst_windows.intervention_key,
        sum(attendance_days.offered_minutes) filter (
            where attendance_days.lesson_date between sst_windows.before_start and sst_windows.before_end
        ) as offered_before,
        sum(attendance_days.valid_absence_minutes + attendance_days.invalid_absence_minutes) filter (
            where attendance_days.lesson_date between sst_windows.before_start and sst_windows.before_end
        ) as absence_before,
        sum(attendance_days.offered_minutes) filter (
            where attendance_days.lesson_date between sst_windows.after_start and sst_windows.follow_up_end
        ) as offered_after,
        sum(attendance_days.valid_absence_minutes + attendance_days.invalid_absence_minutes) filter (
            where attendance_days.lesson_date between sst_windows.after_start and sst_windows.follow_up_end
        ) as absence_after
    from sst_windows
    inner join attendance_days
        on attendance_days.person_pseudonym = sst_windows.person_pseudonym
        and attendance_days.lesson_date between sst_windows.before_start and sst_windows.follow_up_end
    group by sst_windows.intervention_key

),

-- qualifying interventions: F in a published period and enough offered time in both windows
qualifying as (

    select
        periods.period_type,
        periods.period_start,
        sst_windows.person_pseudonym,
        sst_windows.intervention_key,
        sst_windows.follow_up_end,
        window_attendance.absence_after / window_attendance.offered_after
            < window_attendance.absence_before / window_attendance.offered_before as is_improved
    from sst_windows
    inner join window_attendance
        on window_attendance.intervention_key = sst_windows.intervention_key
    inner join periods
        on sst_windows.follow_up_end between periods.period_start and periods.period_end
    where window_attendance.offered_before >= {{ var_number('min_offered_minutes') }}
        and window_attendance.offered_after >= {{ var_number('min_offered_minutes') }}

),

-- a person counts once per period: the intervention with the latest F (ties: highest id)
counted_pupils as (

    select
        qualifying.period_type,
        qualifying.period_start,
        qualifying.person_pseudonym,
        qualifying.is_improved,
        pupil_periods.stadsdelsomrade_code,
        pupil_periods.sspf_omrade_code
    from qualifying
    left join pupil_periods
        on pupil_periods.person_pseudonym = qualifying.person_pseudonym
        and pupil_periods.period_type = qualifying.period_type
        and pupil_periods.period_start = qualifying.period_start
    qualify row_number() over (
        partition by qualifying.person_pseudonym, qualifying.period_type, qualifying.period_start
        order by qualifying.follow_up_end desc, qualifying.intervention_key desc
    ) = 1

),

final as (

    {{ indicator_cube('counted_pupils', areas='school', numerator_when='is_improved') }}

)

select * from final
