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

-- the denominator: pupils with high absence in the period (enrolled and assessed)
high_absence as (

    select
        pupil_periods.period_type,
        pupil_periods.period_start,
        pupil_periods.person_pseudonym,
        pupil_periods.stadsdelsomrade_code,
        pupil_periods.sspf_omrade_code,
        periods.trailing_window_start,
        periods.lookback_end
    from pupil_periods
    inner join periods
        on periods.period_type = pupil_periods.period_type
        and periods.period_start = pupil_periods.period_start
    where pupil_periods.is_high_absence

),

-- at least one suspicion (any age) with Brottsdatum in the trailing window
with_suspicion as (

    select distinct
        high_absence.person_pseudonym,
        high_absence.period_type,
        high_absence.period_start
    from high_absence
    inner join police_events
        on police_events.person_pseudonym = high_absence.person_pseudonym
        and police_events.brottsdatum > high_absence.trailing_window_start
        and police_events.brottsdatum <= high_absence.lookback_end
    where police_events.roll = 'Misstänkt'

),

flagged as (

    select
        high_absence.*,
        with_suspicion.person_pseudonym is not null as is_suspected
    from high_absence
    left join with_suspicion
        on with_suspicion.person_pseudonym = high_absence.person_pseudonym
        and with_suspicion.period_type = high_absence.period_type
        and with_suspicion.period_start = high_absence.period_start

),

final as (

    {{ indicator_cube('flagged', areas='school', numerator_when='is_suspected') }}

)

select * from final
