with

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}

),

-- every pupil enrolled in the period contributes its offered and invalid minutes
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
        offered_minutes,
        invalid_absence_minutes,
        offered_minutes > 0 as has_offered_minutes
    from pupil_periods
    where is_enrolled

),

final as (

    {{ indicator_cube(
        'enrolled_pupils',
        areas='school_and_unit',
        breakdowns=['huvudman', 'arskurs'],
        sum_numerator='invalid_absence_minutes',
        sum_denominator='offered_minutes',
        contributors_when='has_offered_minutes',
        one_row_per_unit=true
    ) }}

)

select * from final
