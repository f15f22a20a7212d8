with

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}

),

-- every pupil enrolled in the period contributes its scheduled and reported records, except
-- those of the reporting lag (the last reporting_lag_school_days school days up to R, which
-- are still being reported)
enrolled_pupils as (

    select
        period_type,
        period_start,
        person_pseudonym,
        stadsdelsomrade_code,
        sspf_omrade_code,
        school_unit_code,
        huvudman_kind,
        school_year,
        settled_scheduled_records as scheduled_records,
        settled_reported_records as reported_records,
        settled_scheduled_records > 0 as has_records
    from pupil_periods
    where is_enrolled

),

final as (

    {{ indicator_cube(
        'enrolled_pupils',
        areas='school_and_unit',
        breakdowns=['huvudman', 'arskurs'],
        sum_numerator='reported_records',
        sum_denominator='scheduled_records',
        contributors_when='has_records',
        one_row_per_unit=true
    ) }}

)

select * from final
