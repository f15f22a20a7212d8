with

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}

),

police_events as (

    select * from {{ ref('fct_police_events') }}

),

periods as (

    select * from {{ ref('int_periods') }}
    where is_report_period

),

-- persons with at least one suspicion (any age) with Brottsdatum in the period
suspected as (

    select distinct
        periods.period_type,
        periods.period_start,
        police_events.person_pseudonym
    from police_events
    inner join periods
        on police_events.brottsdatum between periods.period_start and periods.period_end
    where police_events.roll = 'Misstänkt'

),

-- the denominator: those of them assessed in the period (enrolled, enough offered time)
suspected_pupils as (

    select
        pupil_periods.period_type,
        pupil_periods.period_start,
        pupil_periods.person_pseudonym,
        pupil_periods.stadsdelsomrade_code,
        pupil_periods.sspf_omrade_code,
        pupil_periods.is_high_absence
    from pupil_periods
    inner join suspected
        on suspected.person_pseudonym = pupil_periods.person_pseudonym
        and suspected.period_type = pupil_periods.period_type
        and suspected.period_start = pupil_periods.period_start
    where pupil_periods.is_assessed

),

final as (

    {{ indicator_cube('suspected_pupils', areas='school', numerator_when='is_high_absence') }}

)

select * from final
