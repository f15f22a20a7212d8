{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_rebuilt_periods(rebuilt_attendance_periods(ref('int_ss12000__attendance_days'))) }}",
) }}

{#- Attendance per SS 12000 person id and calendar period (vecka: ISO week, manad, termin: vt
    1 Jan - 30 Jun / ht 1 Jul - 31 Dec, ar): the sums of int_ss12000__attendance_days over
    every day of the period. No reference date, no identities, no reporting lag (like the
    days, nothing here depends on the run parameters or the key): fct_pupil_periods takes the
    periods of int_periods from here and subtracts the few days after R and in the reporting
    lag, instead of summing every day of every period each night. Incremental: a night
    rebuilds only the periods that hold a day int_ss12000__attendance_days rebuilt (the week,
    month, term and year of each touched day): weeks and months from their days, terms and
    years from their months (the rebuilt months and the other months already here). -#}

-- depends_on: {{ ref('stg_ss12000__batch_lesson_days') }}

{%- set measures = ['offered_minutes', 'valid_absence_minutes', 'invalid_absence_minutes',
                     'scheduled_records', 'reported_records'] %}

with

rebuilt_periods as (

    {%- if is_incremental() %}
    {{ rebuilt_attendance_periods(ref('int_ss12000__attendance_days')) }}
    {%- else %}
    select cast(null as varchar) as period_type, cast(null as date) as period_start
    where false
    {%- endif %}

),

days as (

    select
        attendance_days.*,
        {{ period_start('vecka', 'attendance_days.lesson_date') }} as week_start,
        {{ period_start('manad', 'attendance_days.lesson_date') }} as month_start
    from {{ ref('int_ss12000__attendance_days') }} as attendance_days
    {%- if is_incremental() %}
    where {{ period_start('manad', 'attendance_days.lesson_date') }} in (
            select period_start from rebuilt_periods where period_type = 'manad'
        )
        or {{ period_start('vecka', 'attendance_days.lesson_date') }} in (
            select period_start from rebuilt_periods where period_type = 'vecka'
        )
    {%- endif %}

),

weeks_and_months as (

    {{ sums_per_period('days', [('vecka', 'week_start'), ('manad', 'month_start')], measures) }}

),

-- every month of the terms and years to rebuild: the rebuilt months, and the others as built
all_months as (

    select * from weeks_and_months where period_type = 'manad'
    {%- if is_incremental() %}
    union all
    select person_id, period_type, period_start, {{ measures | join(', ') }}
    from {{ this }}
    where period_type = 'manad'
        and period_start not in (select period_start from rebuilt_periods where period_type = 'manad')
        and (
            {{ period_start('termin', 'period_start') }} in (
                select period_start from rebuilt_periods where period_type = 'termin'
            )
            or {{ period_start('ar', 'period_start') }} in (
                select period_start from rebuilt_periods where period_type = 'ar'
            )
        )
    {%- endif %}

),

terms_and_years as (

    {{ sums_per_period('all_months', [('termin', period_start('termin', 'period_start')),
                                      ('ar', period_start('ar', 'period_start'))], measures) }}

),

unioned as (

    select * from weeks_and_months
    union all
    select * from terms_and_years

),

final as (

    select
        person_id,
        period_type,
        period_start,
        cast(offered_minutes as double) as offered_minutes,
        cast(valid_absence_minutes as bigint) as valid_absence_minutes,
        cast(invalid_absence_minutes as bigint) as invalid_absence_minutes,
        cast(scheduled_records as bigint) as scheduled_records,
        cast(reported_records as bigint) as reported_records
    from unioned

)

select * from final
