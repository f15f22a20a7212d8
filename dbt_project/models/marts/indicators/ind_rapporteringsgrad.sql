with

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}

),

-- every pupil enrolled in the period contributes its scheduled and reported records
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
        scheduled_records,
        reported_records,
        scheduled_records > 0 as has_records
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
        contributors_when='has_records'
    ) }}

)

select * from final
