with

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}

),

-- the denominator: pupils enrolled in the period with at least min_offered_minutes offered
assessed_pupils as (

    select
        period_type,
        period_start,
        person_pseudonym,
        stadsdelsomrade_code,
        sspf_omrade_code,
        school_unit_code,
        huvudman_kind,
        school_year,
        is_very_high_absence
    from pupil_periods
    where is_assessed

),

final as (

    {{ indicator_cube(
        'assessed_pupils',
        areas='school_and_unit',
        breakdowns=['huvudman', 'arskurs'],
        numerator_when='is_very_high_absence',
        one_row_per_unit=true
    ) }}

)

select * from final
