{#- One row: what fct_pupil_periods takes from the build as a whole. The first day of the
    reporting lag (the first of the last reporting_lag_school_days school days up to R:
    dates with a linkable person's attendance record; 9999-12-31 when there is none) and the
    periods of int_periods by key. fct_pupil_periods keeps the row it was built from, with R
    and the thresholds it applied (fct_pupil_periods__as_built_parameters): a night rebuilds
    the periods that hold a day between the earlier first lag day (or the day after the
    earlier R) and the later R, the periods that are new, and every period when a threshold
    changed. -#}

with

linkable_people as (

    select person_id
    from {{ ref('int_ss12000__person_pseudonyms') }}
    where is_linkable

),

lag_days as (

    select distinct attendance_days.lesson_date
    from {{ ref('int_ss12000__attendance_days') }} as attendance_days
    semi join linkable_people
        on linkable_people.person_id = attendance_days.person_id
    where attendance_days.lesson_date <= {{ reference_date() }}
    order by attendance_days.lesson_date desc
    limit {{ var_int('reporting_lag_school_days', 0) }}

),

final as (

    select
        (select coalesce(min(lesson_date), date '9999-12-31') from lag_days) as first_lag_day,
        (select list(period_key order by period_key) from {{ ref('int_periods') }}) as period_keys

)

select * from final
